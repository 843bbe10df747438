"""The bell (unread count, the htmx drop-down, mark read / mark all read), the notices page, the
notification settings page and the mails' unsubscribe link, over the test client."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Notification, NotificationPreference
from accounts.notifications import notify, unsubscribe_token

pytestmark = pytest.mark.django_db
E = Notification.Event


def _refill(user, order_id):
    return notify(
        user=user,
        event=E.REFILL_DONE,
        context={"order_id": order_id, "refill_id": order_id, "target": ""},
    )


@pytest.fixture
def alice_client(alice):
    client = Client()
    client.force_login(alice)
    return client


def test_the_bell_shows_the_unread_count_with_one_query(alice, bob, alice_client):
    _refill(alice, 1), _refill(alice, 2), _refill(bob, 3)
    Notification.objects.filter(context__order_id=1).update(read_at="2026-01-01T00:00Z")
    _refill(alice, 4)
    with CaptureQueriesContext(connection) as queries:
        page = alice_client.get(reverse("orders"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="notification-count"' in html
    assert '>2<span class="visually-hidden"> unread</span>' in html  # 2 and 4, not bob's 3
    bell = [q["sql"] for q in queries.captured_queries if "accounts_notification" in q["sql"]]
    assert len(bell) == 1 and "COUNT" in bell[0]


def test_the_bell_has_no_count_when_all_is_read(alice, alice_client):
    html = alice_client.get(reverse("orders")).content.decode()
    assert 'id="notification-count"' in html and " hidden>0<" in html


def test_the_menu_lists_the_users_latest_notices(alice, bob, alice_client):
    _refill(alice, 1), _refill(bob, 2)
    response = alice_client.get(reverse("notification_menu"), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and "Refill of order 1 done" in html
    assert "order 2" not in html and "Mark all read" in html
    assert 'hx-swap-oob="true"' in html  # the badge is refreshed with the list


def test_opening_a_notice_marks_it_read_and_follows_its_link(alice, bob, alice_client):
    notice = _refill(alice, 1)
    response = alice_client.post(reverse("notification_open", args=[notice.pk]))
    assert response.status_code == 302 and response["Location"] == "/orders/1/"
    notice.refresh_from_db()
    assert notice.is_read
    theirs = _refill(bob, 2)
    assert alice_client.post(reverse("notification_open", args=[theirs.pk])).status_code == 404
    assert alice_client.get(reverse("notification_open", args=[notice.pk])).status_code == 405
    theirs.refresh_from_db()
    assert not theirs.is_read


def test_mark_all_read_with_htmx_and_without(alice, bob, alice_client):
    _refill(alice, 1), _refill(alice, 2), _refill(bob, 3)
    response = alice_client.post(reverse("notification_read_all"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Mark all read" not in response.content.decode()
    assert ' hidden hx-swap-oob="true">0<' in response.content.decode()
    assert not Notification.objects.filter(user=alice, read_at__isnull=True).exists()
    assert Notification.objects.filter(user=bob, read_at__isnull=True).count() == 1
    _refill(alice, 4)
    response = alice_client.post(reverse("notification_read_all"))
    assert response.status_code == 302 and response["Location"] == reverse("notifications")


def test_the_notices_page_lists_and_pages(alice, alice_client):
    for order_id in range(1, 33):
        _refill(alice, order_id)
    page = alice_client.get(reverse("notifications")).content.decode()
    assert "Refill of order 32 done" in page and "Refill of order 2 done" not in page
    assert "Page 1 of 2" in page
    second = alice_client.get(reverse("notifications") + "?page=2").content.decode()
    assert "Refill of order 1 done" in second


def test_the_pages_need_a_login(client):
    for name in ("notifications", "notification_menu", "notification_settings"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- settings ----------------------------------------------------------------------------------


def test_the_settings_page_offers_the_customers_mails_and_saves_them(alice, alice_client):
    page = alice_client.get(reverse("notification_settings")).content.decode()
    assert 'name="email_payment_received"' in page and 'name="email_ticket_answered"' in page
    assert "email_provider_balance_low" not in page  # staff's events are not offered
    assert 'name="low_balance_threshold"' in page
    form = {
        "email_payment_received": "on",
        "email_refill_done": "on",
        "low_balance_threshold": "25.5",
    }
    response = alice_client.post(reverse("notification_settings"), form)
    assert response.status_code == 302
    pref = NotificationPreference.objects.get(user=alice)
    assert pref.low_balance_threshold == Decimal("25.5")
    assert pref.email == {
        "payment_received": True,
        "order_refunded": False,
        "refill_done": True,
        "ticket_answered": False,
        "balance_low": False,
    }
    page = alice_client.get(reverse("notification_settings")).content.decode()
    assert 'value="25.50000"' in page
    assert 'name="email_order_refunded" class="form-check-input" id' in page  # unchecked


def test_staff_choose_their_staff_mails_too(staff):
    client = Client()
    client.force_login(staff)
    page = client.get(reverse("notification_settings")).content.decode()
    assert 'name="email_provider_balance_low"' in page and 'name="email_ticket_new"' in page


@pytest.mark.parametrize("bad", ["-5", "0", "abc", "1" * 20])
def test_a_bad_threshold_is_refused_at_the_field_and_keeps_what_was_typed(alice, alice_client, bad):
    form = {"email_refill_done": "on", "low_balance_threshold": bad}
    response = alice_client.post(reverse("notification_settings"), form)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_low_balance_threshold_error"' in html and f'value="{bad}"' in html
    assert 'id="id_email_refill_done" checked' in html
    assert not NotificationPreference.objects.exists()


def test_the_account_page_links_to_the_notification_settings(alice_client):
    page = alice_client.get(reverse("account_settings")).content.decode()
    assert reverse("notification_settings") in page


# --- unsubscribe -------------------------------------------------------------------------------


def test_unsubscribe_asks_on_get_and_works_on_post_without_login(alice, client):
    url = reverse(
        "notification_unsubscribe", args=[unsubscribe_token(user=alice, event=E.ORDER_REFUNDED)]
    )
    page = client.get(url)
    assert page.status_code == 200 and "Stop mails about" in page.content.decode()
    assert not NotificationPreference.objects.exists()  # a link scanner's GET changes nothing
    done = client.post(url)  # the button, or a mail client's one-click POST (no CSRF token)
    assert done.status_code == 200 and "Unsubscribed" in done.content.decode()
    assert NotificationPreference.objects.get(user=alice).email == {"order_refunded": False}


def test_a_forged_unsubscribe_link_changes_nothing(alice, client):
    token = unsubscribe_token(user=alice, event=E.ORDER_REFUNDED)
    forged = token.replace(token.split(":")[-1], "x" * 27)
    response = client.post(reverse("notification_unsubscribe", args=[forged]))
    assert response.status_code == 400 and "does not work" in response.content.decode()
    assert not NotificationPreference.objects.exists()
