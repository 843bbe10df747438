"""The batch forms of the ledger and notification services (the status poll's refunds)."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.models import LedgerEntry, Notification
from accounts.notifications import Notice, NotificationError, notify, notify_many
from accounts.services import Credit, InvalidAmount, balance_credit, balance_credit_many

pytestmark = pytest.mark.django_db
E = Notification.Event


def test_balance_credit_many_chains_each_wallet_and_pays_a_replay_nothing(alice, bob):
    balance_credit(user=alice, amount=Decimal("1"), kind="refund", order_ref=900)  # paid before
    entries = balance_credit_many(
        credits=[
            Credit(user_id=alice.pk, amount=Decimal("0.3"), order_ref=901, memo="a"),
            Credit(user_id=bob.pk, amount=Decimal("2"), order_ref=902),
            Credit(user_id=alice.pk, amount=Decimal("0.2"), order_ref=903),
            Credit(user_id=alice.pk, amount=Decimal("5"), order_ref=900),  # a replay
        ]
    )
    assert entries[900].amount == Decimal("1") and entries[901].memo == "a"
    assert [entries[901].balance_after, entries[903].balance_after] == [
        Decimal("51.30000"),
        Decimal("51.50000"),
    ]
    assert LedgerEntry.objects.filter(kind="refund").count() == 4
    alice.wallet.refresh_from_db(), bob.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("51.5") and bob.wallet.balance == Decimal("2")
    again = balance_credit_many(credits=[Credit(user_id=bob.pk, amount=Decimal(2), order_ref=902)])
    assert again[902].pk == entries[902].pk
    bob.wallet.refresh_from_db()
    assert bob.wallet.balance == Decimal("2")
    call_command("check_ledger", verbosity=0)


def test_balance_credit_many_refuses_bad_amounts_and_one_order_twice(alice):
    with pytest.raises(InvalidAmount):
        balance_credit_many(credits=[Credit(user_id=alice.pk, amount=Decimal(0), order_ref=1)])
    twice = [Credit(user_id=alice.pk, amount=Decimal(1), order_ref=1)] * 2
    with pytest.raises(Exception, match="same order twice"):
        balance_credit_many(credits=twice)
    assert not LedgerEntry.objects.filter(kind="refund").exists()


def _refunded(user, order_id):
    return Notice(
        user=user,
        event=E.ORDER_REFUNDED,
        context={
            "order_id": order_id,
            "status": "Partial",
            "refund": Decimal("0.3"),
            "charge": Decimal("1"),
            "remains": 30,
            "quantity": 100,
            "target": "https://instagram.com/p/x",
        },
        dedupe_key=f"order:{order_id}:partial",
    )


def test_notify_many_writes_each_notice_once_and_skips_keys_told_before(alice, bob):
    notify(**{k: v for k, v in _refunded(alice, 1).__dict__.items()})
    written = notify_many(
        notices=[_refunded(alice, 1), _refunded(alice, 2), _refunded(bob, 3), _refunded(bob, 3)]
    )
    assert [n.context["order_id"] for n in written] == [2, 3]
    assert Notification.objects.count() == 3
    notice = Notification.objects.get(user=bob)
    assert notice.mail == Notification.Mail.QUEUED and "0.30" in notice.message


def test_notify_many_refuses_coalescing_staff_events(staff):
    with pytest.raises(NotificationError):
        notify_many(
            notices=[Notice(user=staff, event=E.ORDER_NEEDS_REVIEW, context={"order_id": 1})]
        )
