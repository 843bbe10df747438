"""Coupons: balance codes (gift cards) redeemed on the funds page, credited once per customer per
code; deposit bonus codes entered at top-up, reserved by the payment, credited as a bonus entry
once when it is paid and given back when it fails, expires or is canceled; every refusal at the
field with nothing typed lost."""

import datetime
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts import gateways
from accounts.coupons import (
    WRONG_CODES_PER_HOUR,
    CouponError,
    coupon_codes_generate,
    coupon_redeem,
    coupon_release,
)
from accounts.gateways.base import Report
from accounts.models import Coupon, CouponUse, LedgerEntry, Payment
from accounts.payments import (
    payment_approve_manual,
    payment_expire_stale,
    payment_reject_manual,
    payment_report_apply,
    payment_start,
)
from accounts.selectors import ledger_find_mismatches
from tests.payments.core_helpers import LedgerGateway, payment_urls

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture(autouse=True)
def _methods(monkeypatch, settings):
    monkeypatch.setitem(gateways.GATEWAYS, "double", "tests.payments.core_helpers.LedgerGateway")
    settings.PAYMENT_METHODS = ["manual", "double"]
    LedgerGateway.STATE.clear()
    cache.clear()  # the wrong-code counters


def gift(code="GIFT-10", value="10", **fields):
    return Coupon.objects.create(code=code, kind=Coupon.Kind.BALANCE, value=D(value), **fields)


def deposit_code(code="WELCOME", value="10", bonus_type="percent", **fields):
    return Coupon.objects.create(
        code=code, kind=Coupon.Kind.DEPOSIT, bonus_type=bonus_type, value=D(value), **fields
    )


def bonuses(user):
    return list(
        LedgerEntry.objects.filter(user=user, kind=LedgerEntry.Kind.BONUS).values_list(
            "amount", flat=True
        )
    )


def refused(**kwargs) -> str:
    with pytest.raises(CouponError) as exc:
        coupon_redeem(**kwargs)
    return str(exc.value)


# --- balance codes ---------------------------------------------------------------------------


def test_a_balance_code_is_credited_once_per_customer_any_case(alice, bob):
    code = gift(max_uses=5)
    entry = coupon_redeem(user=alice, code=" gift-10 ")
    assert entry.amount == D("10") and entry.kind == LedgerEntry.Kind.BONUS
    assert entry.idempotency_key == f"coupon:{code.pk}:{alice.pk}:1"
    assert "already used" in refused(user=alice, code="GIFT-10")
    coupon_redeem(user=bob, code="Gift-10")
    code.refresh_from_db()
    assert code.uses == 2
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == D("60")
    assert not ledger_find_mismatches()


def test_a_multi_use_gift_card_allows_its_uses_per_customer(alice):
    gift(max_uses=None, max_uses_per_customer=3)
    for _ in range(3):
        coupon_redeem(user=alice, code="GIFT-10")
    assert "3 times per customer" in refused(user=alice, code="GIFT-10")
    assert bonuses(alice) == [D("10")] * 3


def test_balance_code_refusals_say_why(alice, bob):
    gift("OLD", expires_at=timezone.now() - datetime.timedelta(minutes=1))
    gift("OFF", is_active=False)
    gift("ONE", max_uses=1)
    deposit_code("DEP")
    assert refused(user=alice, code="OLD") == "This code has expired."
    assert refused(user=alice, code="OFF") == "This code is not valid."
    assert refused(user=alice, code="NOPE") == "This code is not valid."
    assert "enter it when you add funds" in refused(user=alice, code="dep")
    assert "letters, digits" in refused(user=alice, code="no spaces please")
    coupon_redeem(user=bob, code="one")
    assert refused(user=alice, code="ONE") == "This code has been used up."
    assert bonuses(alice) == []


def test_guessing_codes_is_limited_per_customer(alice, bob):
    gift("REAL")
    for n in range(WRONG_CODES_PER_HOUR):
        assert refused(user=alice, code=f"GUESS{n}") == "This code is not valid."
    assert "Too many wrong codes" in refused(user=alice, code="REAL")
    assert coupon_redeem(user=bob, code="REAL").amount == D("10")  # others are not locked out


def test_the_funds_page_redeems_and_keeps_a_refused_code_at_the_field(client, alice):
    gift()
    client.force_login(alice)
    bad = client.post(reverse("funds"), {"code": "gift-1O"})
    assert bad.status_code == 400
    html = bad.content.decode()
    assert 'value="gift-1O"' in html and "This code is not valid." in html
    assert 'id="id_code_error"' in html
    good = client.post(reverse("funds"), {"code": "gift-10"}, follow=True)
    html = good.content.decode()
    assert "10.00 added to your balance" in html and "Balance code GIFT-10" in html
    empty = client.post(reverse("funds"), {"code": ""})
    assert empty.status_code == 400 and "Enter a code." in empty.content.decode()


# --- deposit codes ---------------------------------------------------------------------------


def test_a_deposit_code_is_reserved_then_credited_once_when_paid(alice, staff):
    code = deposit_code(value="10", max_uses=3)
    payment = payment_start(
        user=alice,
        method="manual",
        amount=D("50"),
        urls=payment_urls(),
        customer_reference="TR-1",
        coupon="welcome",
    )
    code.refresh_from_db()
    assert code.uses == 1 and payment.coupon_use.status == CouponUse.Status.RESERVED
    assert bonuses(alice) == []
    payment_approve_manual(payment=payment, actor=staff)
    for _ in range(3):  # repeated "paid" reports find the first credit
        report = Report(gateway_id=payment.gateway_id, status="paid")
        payment_report_apply(method="manual", report=report, source="webhook")
    (entry,) = LedgerEntry.objects.filter(user=alice, kind=LedgerEntry.Kind.BONUS)
    assert entry.amount == D("5") and entry.idempotency_key == f"coupon:manual:{payment.gateway_id}"
    payment.refresh_from_db()
    assert payment.bonus == D("5") and payment.coupon_use.status == CouponUse.Status.USED
    code.refresh_from_db()
    assert code.uses == 1
    call_command("check_ledger")


def test_the_statement_shows_the_deposit_then_the_code_bonus_it_rides_on(client, alice, staff):
    """Read from the oldest, the statement has the deposit first and its code's bonus after it,
    each with the balance after it: not a bonus "on deposit #1" before deposit #1 arrived."""
    deposit_code(value="10")
    payment = payment_start(
        user=alice,
        method="manual",
        amount=D("20"),
        urls=payment_urls(),
        customer_reference="TR-2",
        coupon="welcome",
    )
    payment_approve_manual(payment=payment, actor=staff)
    deposit, bonus = LedgerEntry.objects.filter(
        user=alice, payment_ref__endswith=payment.gateway_id
    ).order_by("pk")
    assert deposit.pk < bonus.pk
    assert (deposit.kind, deposit.amount, deposit.balance_after) == ("deposit", D(20), D(70))
    assert (bonus.kind, bonus.amount, bonus.balance_after) == ("bonus", D(2), D(72))
    client.force_login(alice)
    html = client.get(reverse("funds")).content.decode()
    assert html.index(f"Code WELCOME on deposit #{payment.pk}") < html.index(
        f"Deposit by bank transfer (payment #{payment.pk})"
    )  # newest first
    call_command("check_ledger")


def test_a_fixed_deposit_code_and_its_minimum(alice, staff):
    deposit_code("TENOFF", value="10", bonus_type="fixed", min_deposit=D("100"))
    with pytest.raises(CouponError, match=r"deposits of \$100\.00 or more"):
        payment_start(
            user=alice,
            method="manual",
            amount=D("99.99"),
            urls=payment_urls(),
            customer_reference="X",
            coupon="TENOFF",
        )
    assert not Payment.objects.exists()  # nothing started
    payment = payment_start(
        user=alice,
        method="manual",
        amount=D("100"),
        urls=payment_urls(),
        customer_reference="X",
        coupon="tenoff",
    )
    payment_approve_manual(payment=payment, actor=staff)
    assert bonuses(alice) == [D("10")]


def test_a_rejected_payment_gives_its_use_back(alice, bob, staff):
    code = deposit_code(max_uses=1)
    payment_start(
        user=bob,
        method="manual",
        amount=D("20"),
        urls=payment_urls(),
        customer_reference="B",
        coupon="WELCOME",
    )
    with pytest.raises(CouponError, match="used up"):
        payment_start(
            user=alice,
            method="manual",
            amount=D("20"),
            urls=payment_urls(),
            customer_reference="A",
            coupon="WELCOME",
        )
    bobs = Payment.objects.get(user=bob)
    payment_reject_manual(payment=bobs, actor=staff, reason="never arrived")
    code.refresh_from_db()
    assert code.uses == 0 and bobs.coupon_use.status == CouponUse.Status.RELEASED
    assert not coupon_release(payment=bobs)  # a second release gives nothing back
    code.refresh_from_db()
    assert code.uses == 0
    # alice may now use it
    payment_start(
        user=alice,
        method="manual",
        amount=D("20"),
        urls=payment_urls(),
        customer_reference="A",
        coupon="WELCOME",
    )
    code.refresh_from_db()
    assert code.uses == 1


def test_an_expired_payment_releases_and_a_late_paid_one_takes_a_use_again(alice, bob):
    code = deposit_code(value="10", max_uses=1)
    payment = payment_start(
        user=alice, method="double", amount=D("30"), urls=payment_urls(), coupon="WELCOME"
    )
    Payment.objects.filter(pk=payment.pk).update(expires_at=timezone.now() - datetime.timedelta(1))
    assert payment_expire_stale() == 1
    code.refresh_from_db()
    assert code.uses == 0
    report = Report(gateway_id=payment.gateway_id, status="paid", amount=D("30"), currency="USD")
    payment_report_apply(method="double", report=report, source="webhook")
    assert bonuses(alice) == [D("3")]
    code.refresh_from_db()
    assert code.uses == 1
    assert not ledger_find_mismatches()


def test_a_late_paid_payment_whose_code_was_used_up_meanwhile_is_flagged(alice, bob, staff):
    deposit_code(value="10", max_uses=1)
    payment = payment_start(
        user=alice, method="double", amount=D("30"), urls=payment_urls(), coupon="WELCOME"
    )
    Payment.objects.filter(pk=payment.pk).update(expires_at=timezone.now() - datetime.timedelta(1))
    payment_expire_stale()
    payment_start(
        user=bob,
        method="manual",
        amount=D("20"),
        urls=payment_urls(),
        customer_reference="B",
        coupon="WELCOME",
    )
    report = Report(gateway_id=payment.gateway_id, status="paid", amount=D("30"), currency="USD")
    payment_report_apply(method="double", report=report, source="webhook")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID and payment.needs_attention
    assert "Code WELCOME not credited: This code has been used up." in payment.note
    assert bonuses(alice) == []
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == D("80")  # the deposit itself is credited


def test_the_payment_page_says_why_a_paid_payments_code_was_not_used(client, alice, bob, staff):
    test_a_late_paid_payment_whose_code_was_used_up_meanwhile_is_flagged(alice, bob, staff)
    payment = Payment.objects.get(user=alice)
    client.force_login(alice)
    page = client.get(reverse("payment_detail", args=[payment.public_id])).content.decode()
    assert "no use of the code was left when the payment arrived" in page
    assert "the payment did not go through" not in page


def test_add_funds_shows_a_code_error_at_the_field_and_keeps_everything_typed(client, alice):
    deposit_code(min_deposit=D("50"))
    client.force_login(alice)
    url = reverse("funds_add")
    page = client.post(
        url, {"method": "manual", "amount": "25", "reference": "SEPA-9", "coupon": "welcome"}
    )
    assert page.status_code == 400
    html = page.content.decode()
    assert 'id="coupon-error"' in html and "deposits of $50.00 or more" in html
    assert 'value="welcome"' in html and 'value="SEPA-9"' in html and 'value="25"' in html
    # With another field refused too, the code's error is there at once.
    both = client.post(url, {"method": "manual", "amount": "25", "reference": "", "coupon": "X1"})
    html = both.content.decode()
    assert 'id="reference-error"' in html and "This code is not valid." in html
    assert not Payment.objects.exists()
    ok = client.post(
        url, {"method": "manual", "amount": "50", "reference": "SEPA-9", "coupon": "welcome"}
    )
    assert ok.status_code == 302
    payment = Payment.objects.get()
    assert payment.coupon_use.coupon.code == "WELCOME"
    detail = client.get(reverse("payment_detail", args=[payment.public_id])).content.decode()
    assert "WELCOME</code> · its bonus is added when the payment arrives" in detail


def test_a_code_held_by_a_payment_left_waiting_says_which_and_is_freed_by_cancelling_it(
    client, alice
):
    """A customer who went to the checkout with a code and came back (the back button, a
    closed tab) is not told they "already used" a code whose bonus they never got: they are
    told which payment holds it, and cancelling that payment frees it."""
    deposit_code(value="10", max_uses=5)
    client.force_login(alice)
    url = reverse("funds_add")
    first = client.post(url, {"method": "double", "amount": "20", "coupon": "welcome"})
    assert first.status_code == 302
    left = Payment.objects.get()
    again = client.post(url, {"method": "double", "amount": "30", "coupon": "welcome"})
    assert again.status_code == 400
    html = again.content.decode()
    assert f"Your payment #{left.pk} of $20.00, not paid yet, holds this code" in html
    assert "already used" not in html and 'value="welcome"' in html and 'value="30"' in html
    cancelled = client.post(reverse("payment_cancel", args=[left.public_id]))
    assert cancelled.status_code == 302
    ok = client.post(url, {"method": "double", "amount": "30", "coupon": "welcome"})
    assert ok.status_code == 302 and Payment.objects.count() == 2
    # A use the customer really took still says so.
    used = deposit_code("ONCE", value="5")
    latest = Payment.objects.latest("pk")
    CouponUse.objects.create(coupon=used, user=alice, status=CouponUse.Status.USED, payment=None)
    html = client.post(url, {"method": "double", "amount": "30", "coupon": "once"}).content.decode()
    assert "You have already used this code (once per customer)." in html
    assert Payment.objects.latest("pk") == latest


# --- staff ----------------------------------------------------------------------------------


def test_codes_generated_in_bulk_are_unique_and_like_the_template(alice):
    template = gift("TEMPLATE", value="25", max_uses=1)
    made = coupon_codes_generate(template=template, count=30, prefix="xmas-")
    assert len({c.code for c in made}) == 30
    assert all(c.code.startswith("XMAS-") and c.value == D("25") for c in made)
    assert coupon_redeem(user=alice, code=made[0].code.lower()).amount == D("25")


def test_a_deposit_code_whose_bonus_rounds_to_nothing_still_credits_the_deposit(alice, staff):
    """0.4 % of 1.00 is 0.004, no cent: the deposit is credited and the use counted, without a
    zero bonus entry (the ledger refuses one, which used to fail the whole payment)."""
    code = deposit_code("TINY", value="0.4")
    payment = payment_start(
        user=alice,
        method="manual",
        amount=D("1"),
        urls=payment_urls(),
        customer_reference="T",
        coupon="TINY",
    )
    applied = payment_approve_manual(payment=payment, actor=staff)
    assert applied.outcome == "applied"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID and payment.bonus == D("0")
    assert bonuses(alice) == []
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == D("51")
    use = payment.coupon_use
    assert use.status == CouponUse.Status.USED and use.amount == D("0")
    code.refresh_from_db()
    assert code.uses == 1
    assert not ledger_find_mismatches()


def _expire(payment):
    Payment.objects.filter(pk=payment.pk).update(expires_at=timezone.now() - datetime.timedelta(1))
    payment_expire_stale()


def _paid(payment, amount="30"):
    report = Report(gateway_id=payment.gateway_id, status="paid", amount=D(amount), currency="USD")
    return payment_report_apply(method="double", report=report, source="webhook")


def test_a_use_released_between_two_live_ones_is_taken_again_when_paid_late(alice):
    """Live uses numbered 1 and 2, the first released: the late payment's use is numbered after
    the highest live one (a count + 1 gave 2 again, and the unique number failed the credit)."""
    code = deposit_code(value="10", max_uses_per_customer=2)
    first, second = (
        payment_start(
            user=alice, method="double", amount=D("30"), urls=payment_urls(), coupon="WELCOME"
        )
        for _ in range(2)
    )
    _expire(first)
    assert _paid(first).outcome == "applied"
    assert _paid(second).outcome == "applied"
    assert bonuses(alice) == [D("3"), D("3")]
    code.refresh_from_db()
    assert code.uses == 2
    assert sorted(CouponUse.objects.values_list("status", flat=True)) == ["used", "used"]
    assert not ledger_find_mismatches()


def test_a_new_use_is_numbered_after_the_highest_live_one(alice):
    """Uses 1 and 2 live, 1 released: a new reservation is allowed (one live use of two) and
    is not refused as "already used" for taking the number 2 again."""
    code = deposit_code(value="10", max_uses_per_customer=2)
    first = payment_start(
        user=alice, method="double", amount=D("30"), urls=payment_urls(), coupon="WELCOME"
    )
    payment_start(
        user=alice, method="double", amount=D("30"), urls=payment_urls(), coupon="WELCOME"
    )
    _expire(first)
    third = payment_start(
        user=alice, method="double", amount=D("30"), urls=payment_urls(), coupon="WELCOME"
    )
    assert third.coupon_use.status == CouponUse.Status.RESERVED
    code.refresh_from_db()
    assert code.uses == 2


def test_the_expiry_sweep_locks_the_codes_in_id_order_whatever_the_payments_order(alice):
    # Two sweeps at once hold different payments; locking their codes in payment order could
    # make each wait on the other's code (a deadlock). In code id order, it cannot.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first, second = deposit_code(code="FIRST"), deposit_code(code="SECOND")
    payments = [
        payment_start(user=alice, method="double", amount=D("30"), urls=payment_urls(), coupon=c)
        for c in ("FIRST", "SECOND")  # the newest use (listed first by default) has the higher code
    ]
    Payment.objects.filter(pk__in=[p.pk for p in payments]).update(
        expires_at=timezone.now() - datetime.timedelta(1)
    )
    with CaptureQueriesContext(connection) as queries:
        assert payment_expire_stale() == 2
    table = Coupon._meta.db_table
    locked = [
        q["sql"] for q in queries if f'FROM "{table}"' in q["sql"] and "FOR UPDATE" in q["sql"]
    ]
    assert len(locked) == 2
    assert f"= {first.pk}" in locked[0] and f"= {second.pk}" in locked[1]
    assert set(CouponUse.objects.values_list("status", flat=True)) == {CouponUse.Status.RELEASED}


def test_check_ledger_finds_a_code_whose_counter_is_not_its_live_uses(alice, bob):
    from io import StringIO

    from django.core.management.base import CommandError

    code = gift("TWICE", max_uses=5)
    coupon_redeem(user=alice, code="twice")
    coupon_redeem(user=bob, code="twice")
    call_command("check_ledger", stdout=StringIO())  # 2 counted, 2 live: clean
    Coupon.objects.filter(pk=code.pk).update(uses=1)  # a counter behind: past its limit later
    out = StringIO()
    with pytest.raises(CommandError, match="1 ledger mismatch"):
        call_command("check_ledger", stdout=out)
    assert "coupon TWICE: counts 1 uses but has 2 live ones" in out.getvalue()
