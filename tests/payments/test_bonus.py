"""Deposit bonus rules: the best rule in force is credited once, as its own ledger entry of kind
bonus (key bonus:<method>:<gateway_id>); not below its minimum, only for its method, only in its
time window. The Add funds page lists the rules beside each method; the statement and its CSV
say what each deposit and bonus was for."""

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.gateways.base import Report
from accounts.models import DepositBonusRule, LedgerEntry, Payment
from accounts.payments import payment_approve_manual, payment_report_apply

from .core_helpers import start_manual

pytestmark = pytest.mark.django_db

HOUR = datetime.timedelta(hours=1)


@pytest.fixture(autouse=True)
def _manual_only(settings):
    settings.PAYMENT_METHODS = ["manual"]


def _rule(percent, min_amount="0", **fields):
    return DepositBonusRule.objects.create(
        name=fields.pop("name", f"{percent} %"),
        percent=Decimal(percent),
        min_amount=Decimal(min_amount),
        **fields,
    )


def _bonuses(user):
    return list(LedgerEntry.objects.filter(user=user, kind=LedgerEntry.Kind.BONUS))


def _pay(user, staff, amount="100.00"):
    payment = start_manual(user, amount)
    payment_approve_manual(payment=payment, actor=staff)
    payment.refresh_from_db()
    return payment


def test_the_best_rule_is_credited_once_as_a_bonus_entry(alice, staff):
    _rule("5", "100", name="Five from 100")
    _rule("10", "100", name="Ten from 100", method="manual")
    _rule("20", "500", name="Twenty from 500")  # not reached
    payment = _pay(alice, staff, "100.00")
    for _ in range(3):  # repeats of "paid" find the first credit
        report = Report(gateway_id=payment.gateway_id, status="paid")
        payment_report_apply(method="manual", report=report, source="webhook")
    (bonus,) = _bonuses(alice)
    assert bonus.amount == Decimal("10.00000")
    assert bonus.idempotency_key == f"bonus:manual:{payment.gateway_id}"
    assert bonus.payment_ref == f"manual:{payment.gateway_id}"
    assert bonus.memo == f"Bonus +10 % on deposit #{payment.pk} (Ten from 100)"
    assert payment.bonus == Decimal("10.00000")
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("160.00000")  # 50 + 100 + 10


def test_no_bonus_below_the_minimum(alice, staff):
    _rule("5", "100")
    payment = _pay(alice, staff, "99.99")
    assert _bonuses(alice) == [] and payment.bonus == 0


def test_a_rule_for_another_method_does_not_apply(alice, staff):
    _rule("5", method="stripe")
    _pay(alice, staff, "50.00")
    assert _bonuses(alice) == []


def test_a_rule_applies_only_in_its_time_window_and_when_active(alice, bob, staff):
    now = timezone.now()
    _rule("5", starts_at=now + HOUR)  # not yet
    _rule("6", ends_at=now - HOUR)  # over
    _rule("7", is_active=False)
    _pay(alice, staff, "50.00")
    assert _bonuses(alice) == []
    _rule("3", starts_at=now - HOUR, ends_at=now + HOUR)
    _pay(bob, staff, "50.00")
    assert [b.amount for b in _bonuses(bob)] == [Decimal("1.50000")]


def test_the_add_funds_page_lists_the_rules_beside_each_method(client, alice):
    _rule("5", "100", method="manual")
    _rule("2.5", "10")
    _rule("9", method="stripe")  # another method: not beside the manual one
    _rule("50", starts_at=timezone.now() + HOUR)  # not in force
    client.force_login(alice)
    html = client.get(reverse("funds_add")).content.decode()
    help_text = html.split('id="method-manual-help">', 1)[1].split("</div>", 1)[0]
    assert "+5 % bonus on deposits from $100.00" in help_text
    assert "+2.50 % bonus on deposits from $10.00" in help_text
    assert "+9 %" not in help_text and "+50 %" not in help_text


def test_the_statement_and_csv_say_what_each_deposit_and_bonus_was_for(client, alice, staff):
    _rule("5", "10", name="Spring")
    payment = _pay(alice, staff, "20.00")
    client.force_login(alice)
    html = client.get(reverse("funds")).content.decode()
    assert f"Deposit by bank transfer (payment #{payment.pk})" in html
    assert f"Bonus +5 % on deposit #{payment.pk} (Spring)" in html
    body = b"".join(client.get(reverse("funds_csv")).streaming_content).decode()
    rows = {row["memo"]: row for row in csv.DictReader(io.StringIO(body))}
    deposit = rows[f"Deposit by bank transfer (payment #{payment.pk})"]
    bonus = rows[f"Bonus +5 % on deposit #{payment.pk} (Spring)"]
    assert (deposit["type"], deposit["amount"]) == ("Deposit", "20.00")
    assert (bonus["type"], bonus["amount"]) == ("Deposit bonus", "1.00")
    assert bonus["payment_ref"] == f"manual:{payment.gateway_id}"
    assert Payment.objects.get().bonus == Decimal("1.00000")
