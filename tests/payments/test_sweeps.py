"""The periodic payment sweeps: stale payments expire; waiting gateway payments whose webhook
may have been missed are read at their gateway (bounded, least recently read first, a failing
gateway logged and skipped); both are in the default schedules."""

import datetime
import logging
from decimal import Decimal

import pytest

from accounts import gateways
from accounts.management.commands.setup_schedules import DEFAULT_SCHEDULES, task_exists
from accounts.models import LedgerEntry, Payment, PaymentCallback
from accounts.payments import payment_reconcile_due
from accounts.selectors import ledger_find_mismatches
from accounts.tasks import payments_expire_sweep, payments_reconcile_sweep

from .core_helpers import LedgerGateway, double_gateway_error, start_manual

pytestmark = pytest.mark.django_db

MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture(autouse=True)
def double(monkeypatch, settings):
    monkeypatch.setitem(gateways.GATEWAYS, "double", "tests.payments.core_helpers.LedgerGateway")
    settings.PAYMENT_METHODS = ["manual", "double"]
    LedgerGateway.STATE.clear()
    LedgerGateway.READS.clear()
    LedgerGateway.ASKED.clear()
    return LedgerGateway


def _waiting(user, gateway_id, *, age, expires_in=datetime.timedelta(hours=2), method="double"):
    from django.utils import timezone

    now = timezone.now()
    return Payment.objects.create(
        user=user,
        method=method,
        amount=Decimal("10"),
        currency="USD",
        status=Payment.Status.PENDING,
        gateway_id=gateway_id,
        created_at=now - age,
        expires_at=now + expires_in,
    )


def test_the_expire_sweep_expires_only_waiting_payments_past_their_expiry(alice, settings):
    old = _waiting(alice, "a", age=3 * MINUTE, expires_in=-MINUTE)
    fresh = _waiting(alice, "b", age=3 * MINUTE)
    paid = _waiting(alice, "c", age=3 * MINUTE, expires_in=-MINUTE)
    Payment.objects.filter(pk=paid.pk).update(status=Payment.Status.PAID)
    # A manual transfer waits for staff, however long the bank takes.
    manual = _waiting(alice, "d", age=3 * MINUTE, expires_in=-MINUTE, method="manual")
    assert payments_expire_sweep.delay().get() == 1
    statuses = dict(Payment.objects.values_list("pk", "status"))
    assert statuses == {
        old.pk: "expired",
        fresh.pk: "pending",
        paid.pk: "paid",
        manual.pk: "pending",
    }


def test_the_reconcile_sweep_credits_a_missed_webhook_and_skips_the_rest(alice, caplog):
    missed = _waiting(alice, "missed", age=20 * MINUTE)
    LedgerGateway.STATE["missed"] = "paid"
    LedgerGateway.ASKED["missed"] = (missed.total, missed.currency)
    _waiting(alice, "too-young", age=2 * MINUTE)
    _waiting(alice, "expired", age=20 * MINUTE, expires_in=-MINUTE)
    failing = _waiting(alice, "failing", age=30 * MINUTE)
    LedgerGateway.STATE["failing"] = double_gateway_error()
    still = _waiting(alice, "still", age=15 * MINUTE)
    manual = start_manual(alice)
    Payment.objects.filter(pk=manual.pk).update(created_at=manual.created_at - 30 * MINUTE)

    with caplog.at_level(logging.WARNING, logger="accounts.payments"):
        said = payments_reconcile_sweep.delay().get()

    assert said == "checked 3, changed 1, errors 1"
    assert sorted(LedgerGateway.READS) == ["failing", "missed", "still"]
    assert "connection refused" in caplog.text and f"payment {failing.pk}" in caplog.text
    missed.refresh_from_db()
    assert missed.status == Payment.Status.PAID
    assert LedgerEntry.objects.filter(idempotency_key="deposit:double:missed").count() == 1
    assert PaymentCallback.objects.get(payment=still).outcome == "duplicate"  # still waiting
    assert PaymentCallback.objects.get(payment=missed).source == "poll"
    assert not ledger_find_mismatches()


def test_a_bounded_sweep_gets_round_to_every_payment(alice):
    for name in ("p1", "p2", "p3"):
        _waiting(alice, name, age=20 * MINUTE)
    assert payment_reconcile_due(limit=2).checked == 2
    first = list(LedgerGateway.READS)
    LedgerGateway.READS.clear()
    payment_reconcile_due(limit=2)
    # The one never read goes first, then the least recently read.
    assert LedgerGateway.READS[0] not in first
    assert set(first) | set(LedgerGateway.READS) == {"p1", "p2", "p3"}


def test_both_sweeps_are_default_schedules():
    tasks = {d.task: d for d in DEFAULT_SCHEDULES}
    for name in ("accounts.tasks.payments_expire_sweep", "accounts.tasks.payments_reconcile_sweep"):
        assert task_exists(name)
        assert tasks[name].expire_seconds < 15 * 60
