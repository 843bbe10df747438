"""Referral races on PostgreSQL (threads, each with its own connection): a release run twice at
once releases once; a referred deposit whose "paid" webhook arrives many times at once earns one
commission; payout requests and transfers at the same moment never take more than is
available; approve and reject racing on one payout count once. The books check clean after
each (check_ledger: the ledger, and available commission against its rows)."""

from decimal import Decimal

import pytest
import requests
from django.db import connection

from accounts.fake_gateways.testing import FakeGateways
from accounts.gateways.base import Report
from accounts.models import Commission, CommissionTransfer, LedgerEntry, Payment, ReferrerAccount
from accounts.payments import payment_report_apply
from accounts.referrals import (
    ReferralError,
    commission_release,
    commission_release_due,
    commission_transfer,
    payout_approve,
    payout_reject,
    payout_request_create,
    transfer_token,
)
from tests.payments.core_helpers import start_manual
from tests.threads import run_in_threads

from .referral_helpers import assert_books_clean, make_due, paid_deposit, referred_customer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]


@pytest.fixture(autouse=True)
def _manual(settings):
    settings.PAYMENT_METHODS = ["manual"]


def _released(alice, staff, amount: str = "400.00") -> ReferrerAccount:
    paid_deposit(referred_customer(alice), staff, amount)
    make_due(*Commission.objects.all())
    assert commission_release_due().released == 1
    return ReferrerAccount.objects.get(user=alice)


def test_a_release_run_twice_at_once_releases_once(alice, staff):
    carol = referred_customer(alice)
    for amount in ("100.00", "60.00", "40.00"):
        paid_deposit(carol, staff, amount)
    make_due(*Commission.objects.all())
    runs = run_in_threads(2, lambda i: commission_release_due())
    assert sorted(r.released for r in runs) in ([0, 3], [1, 2]), runs  # 3 in all, each once
    assert sum(r.released for r in runs) == 3
    # And one commission released by eight workers at once.
    dave = referred_customer(alice, "dave")
    paid_deposit(dave, staff, "20.00")
    last = Commission.objects.get(referred=dave)
    make_due(last)
    results = run_in_threads(8, lambda i: commission_release(commission_id=last.pk))
    assert results.count(True) == 1 and results.count(False) == 7, results
    account = ReferrerAccount.objects.get(user=alice)
    assert account.available == Decimal("11.00000")  # 5 % of 220, once
    assert set(Commission.objects.values_list("state", flat=True)) == {"released"}
    assert_books_clean()


def test_a_referred_deposit_paid_ten_times_at_once_earns_one_commission(alice, staff):
    payment = start_manual(referred_customer(alice), "50.00")
    report = Report(
        gateway_id=payment.gateway_id, status="paid", amount=payment.total, currency="USD"
    )
    results = run_in_threads(
        10, lambda i: payment_report_apply(method="manual", report=report, source="webhook")
    )
    assert sorted(r.outcome for r in results) == ["applied"] + ["duplicate"] * 9, results
    (commission,) = Commission.objects.all()
    assert (commission.payment_id, commission.amount) == (payment.pk, Decimal("2.50000"))
    assert_books_clean()


def test_a_stripe_webhook_delivered_ten_times_at_once_earns_one_commission(
    alice, live_server, settings
):
    """The same race end to end: the fake Stripe signs the event, ten copies hit the webhook."""
    carol = referred_customer(alice)
    with FakeGateways(panel_url="http://127.0.0.1:9", webhook_attempts=1) as fake:
        settings.PAYMENT_METHODS = ["stripe"]
        settings.STRIPE_SECRET_KEY = fake.config.stripe_secret_key
        settings.STRIPE_WEBHOOK_SECRET = fake.config.stripe_webhook_secret
        settings.STRIPE_API_BASE = fake.url("stripe")
        from django.test import Client

        client = Client()
        client.force_login(carol)
        assert client.post("/funds/add/", {"method": "stripe", "amount": "30"}).status_code == 302
        payment = Payment.objects.get(user=carol)
        pay = requests.post(payment.checkout_url + "/pay", allow_redirects=False, timeout=10)
        assert pay.status_code == 303
        (delivery,) = fake.wait_for_deliveries("stripe", 1)
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": delivery.headers["Stripe-Signature"],
        }

        def post(_index: int) -> int:
            url = live_server.url + "/payments/stripe/webhook/"
            body = delivery.body.encode()
            return requests.post(url, data=body, headers=headers, timeout=30).status_code

        assert run_in_threads(10, post) == [200] * 10
    (commission,) = Commission.objects.all()
    assert (commission.payment_id, commission.amount) == (payment.pk, Decimal("1.50000"))
    assert LedgerEntry.objects.filter(user=carol, kind="deposit").count() == 1
    assert_books_clean()


def test_payout_requests_at_once_never_exceed_available(alice, staff):
    assert _released(alice, staff).available == Decimal("20.00000")

    def ask(_index: int):
        return payout_request_create(user=alice, amount=Decimal("10"), details="T-wallet")

    results = run_in_threads(8, ask)
    asked = [r for r in results if not isinstance(r, Exception)]
    assert len(asked) == 2, results
    assert all(isinstance(r, ReferralError) for r in results if r not in asked)
    assert ReferrerAccount.objects.get(user=alice).available == 0
    assert_books_clean()


def test_transfers_and_payouts_at_once_never_exceed_available(alice, staff):
    assert _released(alice, staff).available == Decimal("20.00000")

    def use(index: int):
        if index % 2:
            return payout_request_create(user=alice, amount=Decimal("15"), details="T-wallet")
        return commission_transfer(user=alice, amount=Decimal("15"), token=transfer_token())

    results = run_in_threads(8, use)
    assert sum(not isinstance(r, Exception) for r in results) == 1, results
    assert ReferrerAccount.objects.get(user=alice).available == Decimal("5.00000")
    moved = CommissionTransfer.objects.count()
    assert LedgerEntry.objects.filter(user=alice, kind="commission").count() == moved
    assert_books_clean()


def test_one_transfer_form_sent_five_times_at_once_moves_the_money_once(alice, staff):
    _released(alice, staff)
    token = transfer_token()
    results = run_in_threads(
        5, lambda i: commission_transfer(user=alice, amount=Decimal("7"), token=token)
    )
    assert len({r.pk for r in results}) == 1, results
    entries = LedgerEntry.objects.filter(user=alice, kind="commission")
    assert [e.amount for e in entries] == [Decimal("7.00000")]
    assert ReferrerAccount.objects.get(user=alice).available == Decimal("13.00000")
    assert_books_clean()


def test_approve_and_reject_racing_on_one_payout_count_once(alice, staff):
    _released(alice, staff)
    payout = payout_request_create(user=alice, amount=Decimal("20"), details="T-wallet")

    def decide(index: int):
        if index % 2:
            return payout_approve(payout=payout, actor=staff)
        return payout_reject(payout=payout, actor=staff, reason="duplicate request")

    results = run_in_threads(8, decide)
    decided = [r for r in results if r is not None]
    assert len(decided) == 1, results
    account = ReferrerAccount.objects.get(user=alice)
    if decided[0].state == "paid":
        assert (account.available, account.paid_out) == (0, Decimal("20.00000"))
    else:
        assert (account.available, account.paid_out) == (Decimal("20.00000"), 0)
    assert_books_clean()


def test_a_dispute_racing_the_release_either_cancels_or_flags(alice, staff):
    payment = paid_deposit(referred_customer(alice), staff, "100.00")
    make_due(*Commission.objects.all())
    report = Report(gateway_id=payment.gateway_id, status="disputed")

    def work(index: int):
        if index:
            return payment_report_apply(method="manual", report=report, source="webhook")
        return commission_release_due()

    run_in_threads(2, work)
    commission = Commission.objects.get()
    available = ReferrerAccount.objects.get(user=alice).available
    if commission.state == "released":
        assert commission.needs_attention and available == Decimal("5.00000")
    else:
        assert commission.state == "cancelled" and available == 0
    assert_books_clean()
