"""Sign up, log in (with throttling), password reset, settings, funds and the API key page."""

import csv
import io
import re
import uuid
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, LedgerEntry, User
from accounts.selectors import api_key_get_user
from accounts.services import balance_adjust
from accounts.throttle import login_throttle_fail, login_throttle_wait
from tests.threads import run_in_threads

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def test_signup_creates_a_customer_with_a_wallet_and_logs_in(client):
    response = client.post(
        reverse("signup"),
        {
            "username": "carol",
            "email": "carol@example.com",
            "password1": "a-long-Passphrase-9",
            "password2": "a-long-Passphrase-9",
        },
    )
    assert response.status_code == 302
    carol = User.objects.get(username="carol")
    assert carol.wallet.balance == 0
    assert client.get(reverse("home")).context["user"] == carol


def test_signup_refuses_a_taken_email_and_weak_password(client, alice):
    response = client.post(
        reverse("signup"),
        {
            "username": "carol",
            "email": "ALICE@example.com",
            "password1": "123",
            "password2": "123",
        },
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "exists already" in body
    assert "id_email_error" in body and "id_password2_error" in body
    assert not User.objects.filter(username="carol").exists()


def test_login_and_logout_with_plain_posts(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert client.get(reverse("orders")).status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("orders")).status_code == 302


def test_login_is_throttled_per_username_and_ip(client, alice, settings):
    settings.LOGIN_THROTTLE_ATTEMPTS = 3
    for _ in range(3):
        response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
    # Even the right password is refused now, with a clear message.
    response = client.post(reverse("login"), {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == 429
    assert "Too many failed attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address is not locked out.
    other = client.post(
        reverse("login"), {"username": "alice", "password": "pw-alice-123"}, REMOTE_ADDR="10.0.0.9"
    )
    assert other.status_code == 302


def test_successful_login_clears_the_failures(client, alice, settings):
    settings.LOGIN_THROTTLE_ATTEMPTS = 3
    for _ in range(2):
        client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    assert (
        client.post(reverse("login"), {"username": "alice", "password": "pw-alice-123"}).status_code
        == 302
    )
    client.post(reverse("logout"))
    for _ in range(2):
        assert (
            client.post(reverse("login"), {"username": "alice", "password": "wrong"}).status_code
            == 200
        )


def test_password_reset_by_email(client, alice):
    response = client.post(reverse("password_reset"), {"email": "alice@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/password-reset/\S+/)", mail.outbox[0].body).group(1)
    response = client.get(link, follow=True)
    assert response.status_code == 200 and "Choose a new password" in response.content.decode()
    response = client.post(
        response.redirect_chain[-1][0],
        {
            "new_password1": "brand-New-pass-42",
            "new_password2": "brand-New-pass-42",
        },
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("brand-New-pass-42")


def test_settings_change_timezone_email_and_password(alice_client, alice):
    response = alice_client.post(
        reverse("account_settings"), {"form": "timezone", "tz-timezone": "Asia/Tokyo"}
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.timezone == "Asia/Tokyo"
    # Times on the pages are now in Tokyo time.
    entry = LedgerEntry.objects.filter(user=alice).first()
    shown = timezone.localtime(
        entry.created_at, timezone=__import__("zoneinfo").ZoneInfo("Asia/Tokyo")
    ).strftime("%Y-%m-%d %H:%M")
    assert shown in alice_client.get(reverse("funds")).content.decode()

    bad = alice_client.post(
        reverse("account_settings"), {"form": "timezone", "tz-timezone": "Mars/Base"}
    )
    assert bad.status_code == 400

    assert (
        alice_client.post(
            reverse("account_settings"),
            {"form": "email", "email-email": "new@example.com", "email-password": "pw-alice-123"},
        ).status_code
        == 302
    )
    alice.refresh_from_db()
    assert alice.email == "new@example.com"

    wrong = alice_client.post(
        reverse("account_settings"),
        {
            "form": "password",
            "pw-old_password": "nope",
            "pw-new_password1": "x-Another-pass-1",
            "pw-new_password2": "x-Another-pass-1",
        },
    )
    assert wrong.status_code == 400 and "id_pw-old_password_error" in wrong.content.decode()
    ok = alice_client.post(
        reverse("account_settings"),
        {
            "form": "password",
            "pw-old_password": "pw-alice-123",
            "pw-new_password1": "x-Another-pass-1",
            "pw-new_password2": "x-Another-pass-1",
        },
    )
    assert ok.status_code == 302
    assert alice_client.get(reverse("orders")).status_code == 200  # still signed in


def test_statement_shows_running_balance_and_exports_csv(alice_client, alice, staff):
    balance_adjust(user=alice, amount=Decimal("12.5"), created_by=staff, reason="=HYPERLINK(x)")
    balance_adjust(user=alice, amount=Decimal("-2.5"), created_by=staff, reason="Correction")
    page = alice_client.get(reverse("funds")).content.decode()
    assert "62.50" in page and "60.00" in page and "Correction" in page

    response = alice_client.get(reverse("funds_csv"))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:5] == ["entry", "date", "type", "amount", "balance_after"]
    assert [r[4] for r in rows[1:]] == ["50.00000", "62.50000", "60.00000"]
    assert rows[2][6] == "'=HYPERLINK(x)"  # no formula in the customer's spreadsheet


def test_add_funds_page_explains_admin_crediting(alice_client, settings):
    settings.PANEL_FUNDS_INSTRUCTIONS = "Write to billing@example.com"
    body = alice_client.get(reverse("funds_add")).content.decode()
    assert "staff" in body and "billing@example.com" in body


def test_api_key_is_shown_once_and_works(alice_client, alice):
    page = alice_client.get(reverse("api_docs")).content.decode()
    assert "https://panel.example.com/api/v2" in page and "You have no API key yet" in page
    response = alice_client.post(reverse("api_docs"))
    assert response["Cache-Control"] == "no-store"
    raw = response.context["raw_key"]
    assert raw in response.content.decode()
    assert api_key_get_user(raw_key=raw) == alice
    again = alice_client.get(reverse("api_docs")).content.decode()
    assert raw not in again and raw[:8] in again
    # Regenerating replaces it: the old key stops working.
    new_raw = alice_client.post(reverse("api_docs")).context["raw_key"]
    assert api_key_get_user(raw_key=raw) is None
    assert api_key_get_user(raw_key=new_raw) == alice
    assert ApiKey.objects.filter(user=alice).count() == 1


def test_api_page_documents_every_action_and_order_type(alice_client):
    body = alice_client.get(reverse("api_docs")).content.decode()
    for text in [
        "services",
        "refill_status",
        "cancels",
        "balance",
        "Custom Comments",
        "answer_number",
        "Subscriptions",
        "curl -X POST",
        "import requests",
        "curl_init",
    ]:
        assert text in body, text


def test_login_failures_sent_in_parallel_are_all_counted(settings):
    # A read-then-write count lost most of the guesses sent at the same moment, so a guesser
    # with many connections got far more tries than the limit. All 16 must count.
    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        pytest.skip("atomic increments need the Redis cache (the file cache is single-process)")
    settings.LOGIN_THROTTLE_ATTEMPTS = 16
    username, ip = f"race-{uuid.uuid4().hex}", "10.9.9.9"
    results = run_in_threads(16, lambda _: login_throttle_fail(username=username, ip=ip))
    assert results == [None] * 16
    assert login_throttle_wait(username=username, ip=ip) > 0
    settings.LOGIN_THROTTLE_ATTEMPTS = 17
    assert login_throttle_wait(username=username, ip=ip) == 0


def test_several_errors_of_one_field_sit_in_the_one_element_the_field_points_to(client):
    # The widget's aria-describedby names "<id>_error"; one element per error repeated that id,
    # so a screen reader read only the first ("too short") and the page was invalid HTML.
    response = client.post(
        reverse("signup"),
        {"username": "carol", "email": "c@example.com", "password1": "123", "password2": "123"},
    )
    body = response.content.decode()
    assert 'aria-describedby="id_password2_helptext id_password2_error"' in body
    assert body.count('id="id_password2_error"') == 1
    block = re.search(r'id="id_password2_error">(.*?)</div></div>', body, re.S).group(1)
    assert "too short" in block and "too common" in block and "entirely numeric" in block


def test_behind_a_proxy_the_login_throttle_counts_the_clients_address(client, alice, settings):
    # Behind the TLS proxy every request's REMOTE_ADDR is the proxy: keyed on it, one guesser
    # locked every customer out. With API_CLIENT_IP_HEADER set, the proxy's header counts.
    settings.LOGIN_THROTTLE_ATTEMPTS = 3
    settings.API_CLIENT_IP_HEADER = "HTTP_X_REAL_IP"
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for _ in range(3):
        client.post(
            reverse("login"),
            {"username": "alice", "password": "x"},
            HTTP_X_REAL_IP="203.0.113.7",
            **proxy,
        )
    right = {"username": "alice", "password": "pw-alice-123"}
    guesser = client.post(reverse("login"), right, HTTP_X_REAL_IP="203.0.113.7", **proxy)
    assert guesser.status_code == 429
    customer = client.post(reverse("login"), right, HTTP_X_REAL_IP="198.51.100.2", **proxy)
    assert customer.status_code == 302


def test_without_the_setting_a_client_cannot_pick_its_address(client, alice, settings):
    settings.LOGIN_THROTTLE_ATTEMPTS = 3
    settings.API_CLIENT_IP_HEADER = None
    for n in range(3):
        client.post(
            reverse("login"), {"username": "alice", "password": "x"}, HTTP_X_REAL_IP=f"192.0.2.{n}"
        )
    right = {"username": "alice", "password": "pw-alice-123"}
    assert client.post(reverse("login"), right, HTTP_X_REAL_IP="192.0.2.99").status_code == 429


def test_statement_csv_times_are_in_the_customers_time_zone(alice_client, alice):
    alice.timezone = "Asia/Tokyo"
    alice.save(update_fields=["timezone"])
    response = alice_client.get(reverse("funds_csv"))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    # Written while streaming, after the middleware has put UTC back.
    assert rows[1][1].endswith("+09:00")


# --- Help texts are escaped (issue 11 #18) ---------------------------------------------------


def test_field_help_text_is_escaped_not_rendered_as_html():
    from django import forms
    from django.template.loader import render_to_string

    class _Form(forms.Form):
        name = forms.CharField(help_text="<b>bold</b> & <script>alert(1)</script>")

    html = render_to_string("includes/field.html", {"field": _Form()["name"]})
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;" in html
    assert "<b>" not in html and "<script>" not in html


def test_password_rules_built_as_safe_html_still_render_as_a_list(alice_client):
    # Django builds the password validators' help text with format_html: it stays a list.
    signup = Client().get(reverse("signup")).content.decode()
    settings_page = alice_client.get(reverse("account_settings")).content.decode()
    for body in (signup, settings_page):
        assert "<ul><li>" in body and "&lt;ul&gt;" not in body


# --- Changing the e-mail address (issue 11 #11) ----------------------------------------------


def test_changing_the_email_needs_the_current_password(alice_client, alice):
    for password in ("", "wrong-password"):
        response = alice_client.post(
            reverse("account_settings"),
            {"form": "email", "email-email": "thief@example.net", "email-password": password},
        )
        assert response.status_code == 400
        assert "id_email-password_error" in response.content.decode()
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"
    assert mail.outbox == []


def test_changing_the_email_notifies_the_old_address(alice_client, alice):
    page = alice_client.get(reverse("account_settings")).content.decode()
    assert 'name="email-password"' in page and 'autocomplete="current-password"' in page
    response = alice_client.post(
        reverse("account_settings"),
        {"form": "email", "email-email": "new@example.com", "email-password": "pw-alice-123"},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.email == "new@example.com"
    [notice] = mail.outbox
    assert notice.to == ["alice@example.com"]
    assert "changed" in notice.subject
    assert "alice@example.com" in notice.body and "new@example.com" in notice.body
    # Saving the same address again (other case) changes nothing worth a notice.
    alice_client.post(
        reverse("account_settings"),
        {"form": "email", "email-email": "NEW@example.com", "email-password": "pw-alice-123"},
    )
    assert len(mail.outbox) == 1
