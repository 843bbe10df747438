"""Referrals (docs/growth.md): the link and its first-touch cookie, attribution at sign-up with
self-referral and loops refused, commission held on each paid deposit (or spend), cancelled by
a dispute or refund before release, released once, then moved to the balance or paid out."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import referrals
from accounts.gateways.base import Report
from accounts.models import (
    AdminAuditLog,
    Commission,
    CommissionTransfer,
    LedgerEntry,
    LoginEvent,
    PayoutRequest,
    Referral,
    ReferralProgram,
    ReferralVisit,
    ReferrerAccount,
    User,
)
from accounts.payments import payment_report_apply
from accounts.referrals import (
    COOKIE_NAME,
    ReferralError,
    commission_release_due,
    commission_transfer,
    payout_approve,
    payout_reject,
    payout_request_create,
    referral_set_referrer,
    referrer_account_get,
    transfer_token,
)
from accounts.services import balance_credit, balance_debit, customer_create

from .referral_helpers import assert_books_clean, make_due, paid_deposit, referred_customer

pytestmark = pytest.mark.django_db

SIGNUP = {
    "password1": "a-long-Passphrase-9",
    "password2": "a-long-Passphrase-9",
    "accept_terms": "on",
}


@pytest.fixture(autouse=True)
def _setup(settings):
    settings.PAYMENT_METHODS = ["manual"]
    cache.clear()
    yield
    cache.clear()


def _signup(client: Client, username: str, email: str, addr: str = "10.9.9.9"):
    data = {**SIGNUP, "username": username, "email": email}
    response = client.post(reverse("account_signup"), data, REMOTE_ADDR=addr)
    assert response.status_code == 302, response.content.decode()[:3000]
    return User.objects.get(username=username)


def _link(user: User) -> str:
    return reverse("referral_link", args=[referrer_account_get(user=user).code])


# --- the link, the cookie, attribution --------------------------------------------------------


def test_a_visit_is_counted_and_a_signup_through_it_is_attributed(alice):
    client = Client()
    response = client.get(_link(alice), REMOTE_ADDR="10.1.1.1")
    assert response.status_code == 302 and response["Location"] == reverse("account_signup")
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["max-age"] == 30 * 86400 and cookie["httponly"]
    assert ReferralVisit.objects.filter(referrer__user=alice).count() == 1
    carol = _signup(client, "carol", "carol@example.org")
    referral = Referral.objects.get(referred=carol)
    assert referral.referrer == alice and referral.signup_ip == "10.9.9.9"
    assert referral.visit == ReferralVisit.objects.get()


def test_the_first_link_followed_wins_over_a_later_one(alice, bob):
    client = Client()
    client.get(_link(alice))
    response = client.get(_link(bob))
    assert COOKIE_NAME not in response.cookies  # not overwritten
    assert ReferralVisit.objects.filter(referrer__user=bob).count() == 1  # still a visit of bob's
    carol = _signup(client, "carol", "carol@example.org")
    assert carol.referral.referrer == alice


def test_an_expired_or_forged_cookie_attributes_nothing(alice, settings):
    client = Client()
    client.get(_link(alice))
    settings.REFERRAL_COOKIE_DAYS = 1
    client.cookies[COOKIE_NAME] = "1"  # unsigned: forged
    carol = _signup(client, "carol", "carol@example.org")
    assert not Referral.objects.filter(referred=carol).exists()


def test_an_unknown_code_and_a_signed_in_visitor_record_nothing(alice, bob):
    assert Client().get("/r/nosuchcode").status_code == 302
    client = Client()
    client.force_login(bob)
    assert client.get(_link(alice))["Location"] == reverse("home")
    assert not ReferralVisit.objects.exists()


def test_visits_from_one_address_are_counted_a_few_times_an_hour(alice):
    for _ in range(6):
        Client().get(_link(alice), REMOTE_ADDR="10.2.2.2")
    assert ReferralVisit.objects.count() == 3


def test_a_signup_with_the_referrers_company_domain_is_refused(alice):
    client = Client()
    client.get(_link(alice))
    carol = _signup(client, "carol", "carol@example.com")  # alice@example.com
    assert not Referral.objects.filter(referred=carol).exists()


def test_a_free_mail_domain_is_not_a_self_referral_but_the_same_address_is(settings):
    alice = customer_create(username="alice", email="alice.smith@gmail.com", password="pw-a-123")
    client = Client()
    client.get(_link(alice))
    assert _signup(client, "carol", "carol@gmail.com").referral.referrer == alice
    client = Client()
    client.get(_link(alice))
    dave = _signup(client, "dave", "alicesmith+panel@googlemail.com")
    assert not Referral.objects.filter(referred=dave).exists()


def test_a_signup_from_an_address_the_referrer_logs_in_from_is_refused(alice):
    LoginEvent.objects.create(user=alice, ip="10.5.5.5", success=True)
    client = Client()
    client.get(_link(alice))
    carol = _signup(client, "carol", "carol@example.org", addr="10.5.5.5")
    assert not Referral.objects.filter(referred=carol).exists()


def test_staff_change_the_referrer_audited_and_loops_are_refused(alice, bob, staff):
    carol = referred_customer(alice)
    referral_set_referrer(referred=carol, referrer=bob, actor=staff)
    assert Referral.objects.get(referred=carol).referrer == bob
    row = AdminAuditLog.objects.get(action="set referrer")
    assert row.before == {"referrer": alice.pk} and row.after == {"referrer": bob.pk}
    referral_set_referrer(referred=bob, referrer=alice, actor=staff)  # alice → bob → carol
    with pytest.raises(ReferralError, match="loop"):
        referral_set_referrer(referred=alice, referrer=carol, actor=staff)
    with pytest.raises(ReferralError, match="same customer"):
        referral_set_referrer(referred=alice, referrer=alice, actor=staff)
    referral_set_referrer(referred=carol, referrer=None, actor=staff)
    assert not Referral.objects.filter(referred=carol).exists()


# --- commission -------------------------------------------------------------------------------


def test_a_paid_deposit_earns_held_commission_once(alice, staff):
    carol = referred_customer(alice)
    payment = paid_deposit(carol, staff, "100.00")
    (commission,) = Commission.objects.all()
    assert (commission.referrer, commission.state) == (alice, Commission.State.HELD)
    assert commission.amount == Decimal("5.00000") and commission.payment == payment
    assert commission.release_at > timezone.now() + timedelta(days=13)
    report = Report(gateway_id=payment.gateway_id, status="paid", amount=payment.total)
    payment_report_apply(method="manual", report=report, source="webhook")
    assert Commission.objects.count() == 1
    assert not LedgerEntry.objects.filter(user=alice, kind="commission").exists()  # held


def test_the_rate_is_staffs_with_a_referrers_own_rate_winning(alice, bob, staff):
    ReferralProgram.objects.update_or_create(pk=1, defaults={"commission_percent": Decimal("8")})
    carol, dave = referred_customer(alice), referred_customer(bob, "dave")
    ReferrerAccount.objects.filter(user=bob).update(commission_percent=Decimal("12.5"))
    paid_deposit(carol, staff, "40.00")
    paid_deposit(dave, staff, "40.00")
    amounts = dict(Commission.objects.values_list("referrer__username", "amount"))
    assert amounts == {"alice": Decimal("3.20000"), "bob": Decimal("5.00000")}


def test_no_commission_for_customers_not_referred_or_a_paused_programme(alice, bob, staff):
    paid_deposit(bob, staff)
    ReferralProgram.objects.update_or_create(pk=1, defaults={"is_active": False})
    paid_deposit(referred_customer(alice), staff)
    assert not Commission.objects.exists()


@pytest.mark.parametrize("status", ["disputed", "refunded"])
def test_a_dispute_or_refund_before_release_cancels_the_commission(alice, staff, status):
    payment = paid_deposit(referred_customer(alice), staff)
    report = Report(gateway_id=payment.gateway_id, status=status)
    payment_report_apply(method="manual", report=report, source="webhook")
    commission = Commission.objects.get()
    assert commission.state == Commission.State.CANCELLED and status in commission.note
    make_due(commission)
    assert commission_release_due().released == 0
    assert ReferrerAccount.objects.get(user=alice).available == 0


def test_a_dispute_after_release_flags_it_for_staff_and_takes_nothing_back(alice, staff):
    payment = paid_deposit(referred_customer(alice), staff)
    make_due(Commission.objects.get())
    assert commission_release_due().released == 1
    report = Report(gateway_id=payment.gateway_id, status="disputed")
    payment_report_apply(method="manual", report=report, source="webhook")
    commission = Commission.objects.get()
    assert commission.state == Commission.State.RELEASED and commission.needs_attention
    assert ReferrerAccount.objects.get(user=alice).available == Decimal("5.00000")
    assert_books_clean()


def test_release_happens_after_the_hold_and_once(alice, staff):
    carol = referred_customer(alice)
    first, second = paid_deposit(carol, staff, "20.00"), paid_deposit(carol, staff, "60.00")
    assert commission_release_due().released == 0  # still held
    make_due(Commission.objects.get(payment=first))
    assert commission_release_due().released == 1
    assert commission_release_due().released == 0
    account = ReferrerAccount.objects.get(user=alice)
    assert account.available == Decimal("1.00000")
    assert Commission.objects.get(payment=second).state == Commission.State.HELD
    assert_books_clean()


def test_commission_on_spend_follows_order_charges_net_of_refunds(alice, settings):
    settings.REFERRAL_COMMISSION_BASE = "spend"
    carol = referred_customer(alice)
    balance_credit(user=carol, amount=Decimal("100"))
    balance_debit(user=carol, amount=Decimal("40"), order_ref=901, memo="Order 901")
    balance_debit(user=carol, amount=Decimal("20"), order_ref=902, memo="Order 902")
    balance_credit(user=carol, amount=Decimal("10"), kind="refund", order_ref=901)
    balance_credit(user=carol, amount=Decimal("20"), kind="refund", order_ref=902)
    run = commission_release_due()
    assert (run.accrued, run.released) == (2, 0)
    assert commission_release_due().accrued == 0  # once per charge
    make_due(*Commission.objects.all())
    assert commission_release_due().released == 1
    by_order = {c.charge_entry.order_ref: c for c in Commission.objects.all()}
    assert by_order[901].amount == Decimal("1.50000")  # 5 % of 40 - 10
    assert by_order[902].state == Commission.State.CANCELLED  # refunded in full
    assert ReferrerAccount.objects.get(user=alice).available == Decimal("1.50000")
    assert_books_clean()


def test_charges_that_earn_nothing_do_not_hold_up_the_others(alice, bob, settings, monkeypatch):
    """A referrer at 0 % (staff's choice) whose customers place many orders: their charges are
    skipped on every run, and must not fill the run's batch so that nobody else's accrues."""
    settings.REFERRAL_COMMISSION_BASE = "spend"
    monkeypatch.setattr(referrals, "SPEND_ACCRUE_PER_RUN", 2)
    dave = referred_customer(bob, "dave")
    ReferrerAccount.objects.filter(user=bob).update(commission_percent=Decimal("0"))
    balance_credit(user=dave, amount=Decimal("100"))
    for order_ref in (801, 802, 803):
        balance_debit(user=dave, amount=Decimal("10"), order_ref=order_ref, memo="Order")
    carol = referred_customer(alice)
    balance_credit(user=carol, amount=Decimal("100"))
    balance_debit(user=carol, amount=Decimal("40"), order_ref=901, memo="Order 901")
    assert commission_release_due().accrued == 1
    (commission,) = Commission.objects.all()
    assert commission.referrer == alice and commission.amount == Decimal("2.00000")


# --- using available commission ---------------------------------------------------------------


def _available(alice, staff, amount: str = "400.00") -> ReferrerAccount:
    paid_deposit(referred_customer(alice), staff, amount)
    make_due(*Commission.objects.all())
    commission_release_due()
    return ReferrerAccount.objects.get(user=alice)


def test_a_transfer_writes_one_commission_entry_to_the_balance(alice, staff):
    assert _available(alice, staff).available == Decimal("20.00000")
    token = transfer_token()
    done = commission_transfer(user=alice, amount=Decimal("15"), token=token)
    again = commission_transfer(user=alice, amount=Decimal("15"), token=token)  # sent twice
    assert again == done and CommissionTransfer.objects.count() == 1
    entry = done.ledger_entry
    assert (entry.kind, entry.amount) == ("commission", Decimal("15.00000"))
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("65.00000")
    assert ReferrerAccount.objects.get(user=alice).available == Decimal("5.00000")
    with pytest.raises(ReferralError, match=r"Only \$5\.00"):
        commission_transfer(user=alice, amount=Decimal("6"), token=transfer_token())
    assert_books_clean()


def test_payouts_approved_and_rejected_once(alice, staff):
    _available(alice, staff)
    with pytest.raises(ReferralError, match="smallest payout"):
        payout_request_create(user=alice, amount=Decimal("9.99"), details="wallet T1")
    with pytest.raises(ReferralError, match=r"Only \$20\.00"):
        payout_request_create(user=alice, amount=Decimal("20.01"), details="wallet T1")
    first = payout_request_create(user=alice, amount=Decimal("10"), details="wallet T1")
    assert ReferrerAccount.objects.get(user=alice).available == Decimal("10.00000")
    assert payout_approve(payout=first, actor=staff) is not None
    assert payout_approve(payout=first, actor=staff) is None
    assert payout_reject(payout=first, actor=staff, reason="late") is None
    account = ReferrerAccount.objects.get(user=alice)
    assert (account.available, account.paid_out) == (Decimal("10.00000"), Decimal("10.00000"))
    second = payout_request_create(user=alice, amount=Decimal("10"), details="wallet T1")
    assert ReferrerAccount.objects.get(user=alice).available == 0
    with pytest.raises(ReferralError, match="why"):
        payout_reject(payout=second, actor=staff, reason=" ")
    assert payout_reject(payout=second, actor=staff, reason="Wrong address").note
    assert ReferrerAccount.objects.get(user=alice).available == Decimal("10.00000")
    assert AdminAuditLog.objects.filter(action__in=["approve payout", "reject payout"]).count() == 2
    assert_books_clean()


def test_check_ledger_reports_available_commission_that_does_not_add_up(alice, staff):
    _available(alice, staff)
    ReferrerAccount.objects.filter(user=alice).update(available=Decimal("99"))
    with pytest.raises(CommandError, match="mismatch"):
        call_command("check_ledger")


def test_the_release_task_is_scheduled(db):
    call_command("setup_schedules")
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(name="Release referral commissions")
    assert task.task == "accounts.tasks.referral_commissions_release_sweep"


def test_the_release_task_releases(alice, staff):
    from accounts.tasks import referral_commissions_release_sweep

    paid_deposit(referred_customer(alice), staff)
    make_due(*Commission.objects.all())
    assert referral_commissions_release_sweep.delay().get() == "accrued 0, released 1"
    assert PayoutRequest.objects.count() == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REFERRAL_COMMISSION_BASE", "profit"),
        ("REFERRAL_PAYOUT_MINIMUM", "ten"),
        ("REFERRAL_PAYOUT_MINIMUM", "0"),
        ("REFERRAL_SELF_EMAIL_DOMAIN_PATTERN", "(unclosed"),
        ("REFERRAL_COOKIE_DAYS", "0"),
    ],
)
def test_a_wrong_referral_setting_stops_the_start_naming_it(name, value):
    from tests.panel.test_settings import load_settings

    result = load_settings({"DEBUG": "true", name: value})
    assert result.returncode != 0 and name in result.stderr
