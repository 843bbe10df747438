"""accounts.notifications: a notice in the caller's transaction, its mail by Celery after the
commit (eager in tests), preferences, unsubscribe links, staff recipients, and the events of
accounts (payment received, payment disputed, balance below the customer's threshold)."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from accounts.gateways.base import Report
from accounts.models import Coupon, Notification, NotificationPreference
from accounts.notifications import (
    NotificationError,
    notification_email_send,
    notification_preference_set,
    notification_unsubscribe,
    notify,
    notify_staff,
    unsubscribe_read,
    unsubscribe_token,
)
from accounts.payments import payment_approve_manual, payment_report_apply, payment_start
from accounts.services import balance_credit, balance_debit
from accounts.tasks import MAIL_RETRIES, notification_email_send_task
from tests.payments.core_helpers import payment_urls, start_manual
from tests.totp import give_second_factor

pytestmark = pytest.mark.django_db
E = Notification.Event

UUID = "0b7e2c3a-1d2e-4f50-8a9b-0c1d2e3f4a5b"
PAID = {"payment_id": 7, "payment_public_id": UUID, "amount": Decimal("20.00000")}


@pytest.fixture(autouse=True)
def _mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PANEL_PUBLIC_URL = "https://panel.example.com"
    settings.ADMINS = []


def _ctx(**extra):
    return {**PAID, "bonus": Decimal(0), "balance": Decimal("70"), "method": "card", **extra}


def test_notify_writes_the_notice_now_and_mails_after_commit(
    alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notice = notify(user=alice, event=E.PAYMENT_RECEIVED, context=_ctx())
        assert Notification.objects.filter(user=alice).count() == 1
        assert mail.outbox == []  # not while the transaction may still roll back
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert message.subject.endswith("Payment received: $20.00")
    assert "$20.00 were added to your balance" in message.body
    html, mime = message.alternatives[0]
    assert mime == "text/html" and "<strong>$20.00</strong>" in html
    # A link to the preferences, and a signed one-click unsubscribe link for this event.
    assert "https://panel.example.com/account/notifications/" in message.body
    # The token is signed with the time in seconds: read it back rather than sign it again.
    prefix = "https://panel.example.com/account/notifications/unsubscribe/"
    [token] = re.findall(re.escape(prefix) + r"([^/\s]+)/", message.body)
    assert unsubscribe_read(token) == (alice, E.PAYMENT_RECEIVED)
    unsubscribe = f"{prefix}{token}/"
    assert unsubscribe in html
    assert message.extra_headers["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    notice.refresh_from_db()
    assert (notice.mail, notice.title, notice.url) == (
        Notification.Mail.SENT,
        "Payment received: $20.00",
        f"/funds/payments/{UUID}/",
    )
    assert notice.mailed_at is not None and not notice.is_read


def test_a_rolled_back_notice_leaves_nothing_and_mails_nothing(
    alice, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        notify(user=alice, event=E.PAYMENT_RECEIVED, context=_ctx())
        raise RuntimeError("the payment's transaction fails")
    assert callbacks == [] and mail.outbox == []
    assert not Notification.objects.exists()


def test_a_mail_turned_off_still_shows_in_the_panel(alice, django_capture_on_commit_callbacks):
    notification_preference_set(user=alice, email={E.PAYMENT_RECEIVED: False})
    with django_capture_on_commit_callbacks(execute=True):
        notice = notify(user=alice, event=E.PAYMENT_RECEIVED, context=_ctx())
        other = notify(
            user=alice,
            event=E.REFILL_DONE,
            context={"order_id": 3, "refill_id": 1, "target": "https://x.com/p"},
        )
    other.refresh_from_db()
    assert notice.mail == Notification.Mail.NONE and other.mail == Notification.Mail.SENT
    assert [m.subject.split("] ")[-1] for m in mail.outbox] == ["Refill of order 3 done"]


def test_no_address_no_mail(alice, django_capture_on_commit_callbacks):
    alice.email = ""
    alice.save(update_fields=["email"])
    with django_capture_on_commit_callbacks(execute=True):
        notice = notify(user=alice, event=E.PAYMENT_RECEIVED, context=_ctx())
    assert notice.mail == Notification.Mail.NONE and mail.outbox == []


def test_the_same_change_told_twice_gives_one_notice(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = notify(user=alice, event=E.PAYMENT_RECEIVED, context=_ctx(), dedupe_key="p:7")
        again = notify(user=alice, event=E.PAYMENT_RECEIVED, context=_ctx(), dedupe_key="p:7")
    assert first is not None and again is None
    assert Notification.objects.count() == 1 and len(mail.outbox) == 1


def test_an_unknown_event_or_a_missing_value_is_refused(alice):
    with pytest.raises(NotificationError, match="Unknown"):
        notify(user=alice, event="pizza_delivered", context={})
    with pytest.raises(NotificationError, match="'ticket_id'"):
        notify(user=alice, event=E.TICKET_ANSWERED, context={"subject": "Help"})
    with pytest.raises(NotificationError, match="not a staff event"):
        notify_staff(event=E.PAYMENT_RECEIVED, context=_ctx())
    assert not Notification.objects.exists()


def test_ticket_events_are_one_liners(alice, staff, django_capture_on_commit_callbacks):
    """The support app's two events: the customer's answer and staff's new ticket."""
    with django_capture_on_commit_callbacks(execute=True):
        notify(
            user=alice,
            event=E.TICKET_ANSWERED,
            context={
                "ticket_id": 5,
                "subject": "Order 12",
                "url": "/support/5/",
                "answer": "Done.",
            },
        )
        notify_staff(
            event=E.TICKET_NEW,
            context={"ticket_id": 5, "subject": "Order 12", "customer": "alice", "url": "/a/5/"},
        )
    answered, new = mail.outbox
    assert answered.to == ["alice@example.com"] and "Done." in answered.body
    assert "https://panel.example.com/support/5/" in answered.body
    assert new.to == ["staff@example.com"] and "alice opened ticket #5" in new.body


def test_unsubscribe_turns_off_one_event_only(alice):
    token = unsubscribe_token(user=alice, event=E.ORDER_REFUNDED)
    assert unsubscribe_read(token) == (alice, E.ORDER_REFUNDED)
    assert unsubscribe_read(token[:-2] + "xx") is None
    assert unsubscribe_read("garbage") is None
    notification_unsubscribe(token=token)
    pref = NotificationPreference.objects.get(user=alice)
    assert pref.email == {E.ORDER_REFUNDED: False}


def test_staff_events_go_to_each_active_staff_member_and_the_other_admin_addresses(
    django_user_model, staff, settings, django_capture_on_commit_callbacks
):
    quiet = django_user_model.objects.create_user("quiet", "quiet@example.com", "pw", is_staff=True)
    give_second_factor(quiet)
    notification_preference_set(user=quiet, email={E.PROVIDER_BALANCE_LOW: False})
    django_user_model.objects.create_user(
        "gone", "gone@example.com", "pw", is_staff=True, is_active=False
    )
    django_user_model.objects.create_user("noaddress", "", "pw", is_staff=True)
    settings.ADMINS = [("Staff", "STAFF@example.com"), ("Ops", "ops@example.com")]
    context = {
        "provider": "up",
        "provider_id": 1,
        "balance": "3.00000",
        "threshold": "10.00000",
        "provider_currency": "USD",
    }
    with django_capture_on_commit_callbacks(execute=True):
        notices = notify_staff(event=E.PROVIDER_BALANCE_LOW, context=context)
    assert sorted(n.user.username for n in notices) == ["noaddress", "quiet", "staff"]
    assert sorted(tuple(m.to) for m in mail.outbox) == [
        ("ops@example.com",),  # in ADMINS, no staff user's address: the operators' list
        ("staff@example.com",),  # quiet turned it off; noaddress has none; gone is inactive
    ]
    ops = next(m for m in mail.outbox if m.to == ["ops@example.com"])
    assert "ADMIN_EMAILS" in ops.body and "unsubscribe" not in ops.body
    assert "/admin/providers/provider/1/change/" in ops.body


def test_a_burst_of_orders_to_review_is_one_notice_until_read(
    staff, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for order_id in (1, 2, 3):
            notify_staff(
                event=E.ORDER_NEEDS_REVIEW, context={"order_id": order_id, "reason": "timeout"}
            )
    assert Notification.objects.filter(user=staff).count() == 1 and len(mail.outbox) == 1
    Notification.objects.update(read_at="2026-01-01T00:00Z")
    notify_staff(event=E.ORDER_NEEDS_REVIEW, context={"order_id": 4, "reason": "timeout"})
    assert Notification.objects.filter(user=staff).count() == 2


def test_a_mail_server_down_is_retried_then_marked_failed(alice, settings):
    notice = notify(user=alice, event=E.PAYMENT_RECEIVED, context=_ctx())
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    with pytest.raises(OSError):  # nothing listens on port 9: the task would retry
        notification_email_send(notification_id=notice.pk)
    notification_email_send_task.apply(args=[notice.pk], retries=MAIL_RETRIES)
    notice.refresh_from_db()
    assert notice.mail == Notification.Mail.FAILED and mail.outbox == []


def test_a_sent_mail_is_not_sent_again(alice):
    notice = notify(user=alice, event=E.PAYMENT_RECEIVED, context=_ctx())
    assert notification_email_send(notification_id=notice.pk)
    assert not notification_email_send(notification_id=notice.pk)  # a redelivered task
    assert len(mail.outbox) == 1


# --- the events of accounts ----------------------------------------------------------------


def test_a_paid_payment_tells_the_customer_once(
    alice, staff, settings, django_capture_on_commit_callbacks
):
    settings.PAYMENT_METHODS = ["manual"]
    payment = start_manual(alice, "20.00")
    with django_capture_on_commit_callbacks(execute=True):
        payment_approve_manual(payment=payment, actor=staff)
        # The gateway's late "paid" for the same payment tells nobody again.
        payment_report_apply(
            method="manual",
            report=Report(gateway_id=payment.gateway_id, status="paid"),
            source="webhook",
        )
    [notice] = Notification.objects.filter(user=alice)
    assert notice.event == E.PAYMENT_RECEIVED and notice.context["balance"] == "$70.00"
    [message] = mail.outbox
    assert message.to == ["alice@example.com"] and "Your balance is now $70.00" in message.body


def test_the_paid_notice_in_the_panel_names_the_bonus_and_the_balance_as_the_mail_does(
    alice, staff, settings, django_capture_on_commit_callbacks
):
    """The bell and the mail tell the same figures: a customer who used a bonus code sees it
    credited in the notice too, not only the deposit."""
    settings.PAYMENT_METHODS = ["manual"]
    Coupon.objects.create(code="SPRING", kind=Coupon.Kind.DEPOSIT, value=Decimal("10"))
    payment = payment_start(
        user=alice,
        method="manual",
        amount=Decimal("20"),
        urls=payment_urls(),
        customer_reference="TR-9",
        coupon="spring",
    )
    with django_capture_on_commit_callbacks(execute=True):
        payment_approve_manual(payment=payment, actor=staff)
    [notice] = Notification.objects.filter(user=alice)
    assert notice.message == (
        f"$20.00 were added to your balance, plus a bonus of $2.00 (payment #{payment.pk})."
        " Your balance is now $72.00."
    )
    [message] = mail.outbox
    assert "plus a bonus of $2.00" in message.body
    assert "Your balance is now $72.00" in message.body
    # Without a bonus the notice says no bonus.
    with django_capture_on_commit_callbacks(execute=True):
        notice = notify(user=alice, event=E.PAYMENT_RECEIVED, context=_ctx(), dedupe_key="p:9")
    assert notice.message == (
        "$20.00 were added to your balance (payment #7). Your balance is now $70.00."
    )


def test_a_disputed_payment_tells_staff_with_a_notice_and_a_mail(
    alice, staff, settings, django_capture_on_commit_callbacks
):
    settings.PAYMENT_METHODS = ["manual"]
    notification_preference_set(user=alice, email={E.PAYMENT_RECEIVED: False})
    payment = start_manual(alice, "20.00")
    payment_approve_manual(payment=payment, actor=staff)
    with django_capture_on_commit_callbacks(execute=True):
        payment_report_apply(
            method="manual",
            report=Report(gateway_id=payment.gateway_id, status="disputed"),
            source="webhook",
        )
    [notice] = Notification.objects.filter(user=staff)
    assert notice.event == E.PAYMENT_DISPUTED
    assert notice.url == f"/admin/accounts/payment/{payment.pk}/change/"
    [message] = mail.outbox
    assert message.to == ["staff@example.com"]
    assert f"reports payment #{payment.pk} disputed" in message.body and "alice" in message.body


def test_balance_low_is_told_once_per_crossing(alice, django_capture_on_commit_callbacks):
    notification_preference_set(user=alice, low_balance_threshold=Decimal("30"))
    with django_capture_on_commit_callbacks(execute=True):
        balance_debit(user=alice, amount=Decimal("15"), order_ref=101)  # 50 -> 35: above
        balance_debit(user=alice, amount=Decimal("10"), order_ref=102)  # 35 -> 25: crosses
        balance_debit(user=alice, amount=Decimal("5"), order_ref=103)  # 25 -> 20: still below
    [notice] = Notification.objects.filter(user=alice, event=E.BALANCE_LOW)
    assert notice.title == "Your balance is below $30.00"
    assert notice.message == "After order 102 your balance is $25.00."
    assert len(mail.outbox) == 1 and "below the $30.00 you set" in mail.outbox[0].body
    balance_credit(user=alice, amount=Decimal("50"))  # 70: above again
    balance_debit(user=alice, amount=Decimal("45"), order_ref=104)  # crosses again
    assert Notification.objects.filter(user=alice, event=E.BALANCE_LOW).count() == 2


def test_no_threshold_no_balance_notice(alice):
    balance_debit(user=alice, amount=Decimal("49"), order_ref=1)
    assert not Notification.objects.exists()


def test_staff_see_the_notices_and_their_mail_state_in_admin(alice, admin_client):
    notice = notify(user=alice, event=E.PAYMENT_RECEIVED, context=_ctx())
    listing = admin_client.get("/admin/accounts/notification/?mail=queued")
    assert listing.status_code == 200 and "Payment received: $20.00" in listing.content.decode()
    detail = admin_client.get(f"/admin/accounts/notification/{notice.pk}/change/")
    assert detail.status_code == 200 and "payment_received" in detail.content.decode()
    assert admin_client.get("/admin/accounts/notification/add/").status_code == 403


def test_without_staff_users_a_burst_is_mailed_to_the_admins_once(
    settings, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    cache.delete(f"notifications:admins:{E.ORDER_NEEDS_REVIEW}")
    settings.ADMINS = [("Ops", "ops@example.com")]
    with django_capture_on_commit_callbacks(execute=True):
        for order_id in (1, 2, 3):
            notify_staff(
                event=E.ORDER_NEEDS_REVIEW, context={"order_id": order_id, "reason": "timeout"}
            )
        notify_staff(event=E.TICKET_NEW, context={"ticket_id": 1, "subject": "a", "customer": "c"})
        notify_staff(event=E.TICKET_NEW, context={"ticket_id": 2, "subject": "b", "customer": "c"})
    assert [m.to for m in mail.outbox] == [["ops@example.com"]] * 3  # 1 review + 2 tickets
    assert not Notification.objects.exists()
    cache.delete(f"notifications:admins:{E.ORDER_NEEDS_REVIEW}")


def test_cleanup_deletes_only_notices_read_long_ago(alice, settings):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    old_read, old_unread, recent = (_refill_notice(alice, n) for n in (1, 2, 3))
    now = timezone.now()
    Notification.objects.filter(pk=old_read.pk).update(read_at=now - timedelta(days=200))
    Notification.objects.filter(pk=old_unread.pk).update(created_at=now - timedelta(days=300))
    Notification.objects.filter(pk=recent.pk).update(read_at=now - timedelta(days=10))
    settings.PANEL_NOTIFICATION_DAYS = 180
    call_command("cleanup_notifications", verbosity=0)
    assert set(Notification.objects.values_list("pk", flat=True)) == {old_unread.pk, recent.pk}
    settings.PANEL_NOTIFICATION_DAYS = 0
    Notification.objects.update(read_at=now - timedelta(days=900))
    call_command("cleanup_notifications", verbosity=0)
    assert Notification.objects.count() == 2


def _refill_notice(user, order_id):
    return notify(
        user=user,
        event=E.REFILL_DONE,
        context={"order_id": order_id, "refill_id": order_id, "target": ""},
    )


def test_the_nightly_sweep_deletes_notices_read_long_ago_and_keeps_unread_ones(alice, settings):
    from accounts.tasks import notifications_cleanup_sweep

    long_ago = timezone.now() - timedelta(days=200)
    read = Notification.objects.create(
        user=alice, event="refill_done", title="old, read", created_at=long_ago, read_at=long_ago
    )
    unread = Notification.objects.create(
        user=alice, event="refill_done", title="old, unread", created_at=long_ago
    )
    settings.PANEL_NOTIFICATION_DAYS = 0
    assert notifications_cleanup_sweep() == "notices kept (setting 0)"
    settings.PANEL_NOTIFICATION_DAYS = 180
    assert notifications_cleanup_sweep() == "deleted 1"
    assert list(Notification.objects.values_list("pk", flat=True)) == [unread.pk]
    assert not Notification.objects.filter(pk=read.pk).exists()
