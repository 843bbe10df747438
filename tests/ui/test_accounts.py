"""Sign up, log in (with throttling), password reset, settings, funds and the API key page."""

import csv
import io
import re
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, LedgerEntry, User
from accounts.selectors import api_key_get_user
from accounts.services import balance_adjust

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


SIGNUP = {
    "username": "carol",
    "email": "carol@example.com",
    "password1": "a-long-Passphrase-9",
    "password2": "a-long-Passphrase-9",
    "accept_terms": "on",
}


def test_signup_creates_a_customer_with_a_wallet_and_logs_in(client):
    response = client.post(reverse("account_signup"), SIGNUP)
    assert response.status_code == 302 and response["Location"] == reverse("funds_add")
    carol = User.objects.get(username="carol")
    assert carol.wallet.balance == 0
    assert client.get(reverse("home")).context["user"] == carol
    # Verification is optional in the tests (DEBUG settings): the link is mailed all the same.
    [message] = mail.outbox
    assert message.to == ["carol@example.com"] and "/accounts/confirm-email/" in message.body


def test_signup_refuses_a_taken_email_and_weak_password(client, alice):
    data = {**SIGNUP, "email": "ALICE@example.com", "password1": "123", "password2": "123"}
    response = client.post(reverse("account_signup"), data)
    assert response.status_code == 200
    body = response.content.decode()
    assert "already registered with this email" in body
    assert "id_email_error" in body and "id_password1_error" in body
    assert 'value="carol"' in body  # what was typed stays
    assert not User.objects.filter(username="carol").exists()


@pytest.mark.parametrize("login", ["alice", "alice@example.com", "ALICE@Example.com"])
def test_login_by_username_or_email_and_logout(client, alice, login):
    response = client.post(reverse("account_login"), {"login": login, "password": "pw-alice-123"})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert client.get(reverse("orders")).status_code == 200
    assert client.post(reverse("account_logout")).status_code == 302
    assert client.get(reverse("orders")).status_code == 302


def test_a_wrong_password_is_refused_at_the_form_and_keeps_the_login(client, alice):
    response = client.post(reverse("account_login"), {"login": "alice", "password": "wrong"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "not correct" in body and 'value="alice"' in body
    assert "_auth_user_id" not in client.session


def test_logout_by_get_shows_a_log_out_button(alice_client):
    for url in (reverse("account_logout"), "/logout/"):
        response = alice_client.get(url, follow=True)
        assert response.status_code == 200
        body = response.content.decode()
        assert f'action="{reverse("account_logout")}"' in body and "Log out" in body
    assert alice_client.get(reverse("orders")).status_code == 200  # a GET logs nobody out


def test_login_is_rate_limited_per_login_and_address(client, alice, settings):
    settings.ACCOUNT_RATE_LIMITS = {
        **settings.ACCOUNT_RATE_LIMITS,
        "login_failed": "50/15m/ip,3/15m/key",
    }
    for _ in range(3):
        response = client.post(reverse("account_login"), {"login": "alice", "password": "wrong"})
        assert "not correct" in response.content.decode()
    # Even the right password is refused now, with a clear message at the form.
    response = client.post(reverse("account_login"), {"login": "alice", "password": "pw-alice-123"})
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address is not locked out.
    other = client.post(
        reverse("account_login"),
        {"login": "alice", "password": "pw-alice-123"},
        REMOTE_ADDR="10.0.0.9",
    )
    assert other.status_code == 302


def test_password_reset_by_email(client, alice):
    response = client.post(reverse("account_reset_password"), {"email": "alice@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/password/reset/key/\S+/)", mail.outbox[0].body)
    response = client.get(link.group(1), follow=True)
    assert response.status_code == 200 and "change password" in response.content.decode().lower()
    response = client.post(
        response.redirect_chain[-1][0],
        {"password1": "brand-New-pass-42", "password2": "brand-New-pass-42"},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("brand-New-pass-42")


def test_settings_change_timezone_and_password(alice_client, alice):
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

    wrong = alice_client.post(
        reverse("account_change_password"),
        {"oldpassword": "nope", "password1": "x-Another-pass-1", "password2": "x-Another-pass-1"},
    )
    assert wrong.status_code == 200 and "id_oldpassword_error" in wrong.content.decode()
    ok = alice_client.post(
        reverse("account_change_password"),
        {
            "oldpassword": "pw-alice-123",
            "password1": "x-Another-pass-1",
            "password2": "x-Another-pass-1",
        },
    )
    assert ok.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("x-Another-pass-1")
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
    assert [r[4] for r in rows[1:]] == ["50.00", "62.50", "60.00"]
    assert rows[2][6] == "'=HYPERLINK(x)"  # no formula in the customer's spreadsheet


def test_add_funds_page_explains_admin_crediting(alice_client, settings):
    settings.PANEL_FUNDS_INSTRUCTIONS = "Write to billing@example.com"
    body = alice_client.get(reverse("funds_add")).content.decode()
    assert "staff" in body and "billing@example.com" in body


def _reauthenticate(client, password="pw-alice-123"):
    return client.post(reverse("account_reauthenticate"), {"password": password})


def test_api_key_is_shown_once_and_works(alice_client, alice):
    page = alice_client.get(reverse("api_docs")).content.decode()
    assert "https://panel.example.com/api/v2" in page and "You have no API key yet" in page
    assert _reauthenticate(alice_client).status_code == 302
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


def test_a_new_api_key_needs_a_fresh_password(alice_client, alice):
    # A session alone (here one that never typed the password) cannot rotate the key.
    response = alice_client.post(reverse("api_docs"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    assert not ApiKey.objects.filter(user=alice).exists()
    wrong = _reauthenticate(alice_client, "wrong-password")
    assert wrong.status_code == 200 and "id_password_error" in wrong.content.decode()
    assert alice_client.post(reverse("api_docs")).status_code == 302
    assert not ApiKey.objects.filter(user=alice).exists()
    assert _reauthenticate(alice_client).status_code == 302
    assert alice_client.post(reverse("api_docs")).status_code == 200
    assert ApiKey.objects.filter(user=alice).count() == 1


def test_a_new_api_key_asks_again_even_right_after_logging_in(client, alice):
    # allauth counts only a reauthentication, not the login itself, as fresh.
    client.post(reverse("account_login"), {"login": "alice", "password": "pw-alice-123"})
    response = client.post(reverse("api_docs"))
    assert response["Location"].startswith(reverse("account_reauthenticate"))


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


def test_several_errors_of_one_field_sit_in_the_one_element_the_field_points_to(client):
    # The widget's aria-describedby names "<id>_error"; one element per error repeated that id,
    # so a screen reader read only the first ("too short") and the page was invalid HTML.
    response = client.post(
        reverse("account_signup"),
        {"username": "carol", "email": "c@example.com", "password1": "123", "password2": "123"},
    )
    body = response.content.decode()
    assert 'aria-describedby="id_password1_helptext id_password1_error"' in body
    assert body.count('id="id_password1_error"') == 1
    block = re.search(r'id="id_password1_error">(.*?)</div></div>', body, re.S).group(1)
    assert "too short" in block and "too common" in block and "entirely numeric" in block


def _fail_three_times_then_try(client, settings, **extra):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login_failed": "3/15m/key"}
    for _ in range(3):
        client.post(reverse("account_login"), {"login": "alice", "password": "x"}, **extra)


def test_behind_a_proxy_the_login_limit_counts_the_clients_address(client, alice, settings):
    # Behind the TLS proxy every request's REMOTE_ADDR is the proxy: keyed on it, one guesser
    # locked every customer out. With API_CLIENT_IP_HEADER set, the proxy's header counts
    # (accounts.adapter.PanelAccountAdapter.get_client_ip).
    settings.API_CLIENT_IP_HEADER = "HTTP_X_REAL_IP"
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    _fail_three_times_then_try(client, settings, HTTP_X_REAL_IP="203.0.113.7", **proxy)
    right = {"login": "alice", "password": "pw-alice-123"}
    guesser = client.post(reverse("account_login"), right, HTTP_X_REAL_IP="203.0.113.7", **proxy)
    assert "Too many failed login attempts" in guesser.content.decode()
    customer = client.post(reverse("account_login"), right, HTTP_X_REAL_IP="198.51.100.2", **proxy)
    assert customer.status_code == 302


def test_without_the_setting_a_client_cannot_pick_its_address(client, alice, settings):
    settings.API_CLIENT_IP_HEADER = None
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login_failed": "3/15m/key"}
    for n in range(3):
        client.post(
            reverse("account_login"),
            {"login": "alice", "password": "x"},
            HTTP_X_REAL_IP=f"192.0.2.{n}",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}",
        )
    right = {"login": "alice", "password": "pw-alice-123"}
    response = client.post(reverse("account_login"), right, HTTP_X_REAL_IP="192.0.2.99")
    assert "Too many failed login attempts" in response.content.decode()


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
    signup = Client().get(reverse("account_signup")).content.decode()
    password_page = alice_client.get(reverse("account_change_password")).content.decode()
    for body in (signup, password_page):
        assert "<ul><li>" in body and "&lt;ul&gt;" not in body


# --- Changing the e-mail address (issue 11 #11) ----------------------------------------------


def test_changing_the_email_needs_the_current_password(alice_client, alice):
    add = {"action_add": "", "email": "thief@example.net"}
    response = alice_client.post(reverse("account_email"), add)
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    for password in ("", "wrong-password"):
        refused = _reauthenticate(alice_client, password)
        assert refused.status_code == 200 and "id_password_error" in refused.content.decode()
        assert alice_client.post(reverse("account_email"), add).status_code == 302
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"
    assert not alice.emailaddress_set.filter(email="thief@example.net").exists()
    assert mail.outbox == []


def test_changing_the_email_notifies_the_old_address(alice_client, alice):
    _reauthenticate(alice_client)
    response = alice_client.post(
        reverse("account_email"), {"action_add": "", "email": "new@example.com"}
    )
    assert response.status_code == 302
    [confirm] = mail.outbox
    assert confirm.to == ["new@example.com"]
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"  # not before the new address is confirmed
    link = re.search(r"https?://[^/]+(/accounts/confirm-email/\S+/)", confirm.body).group(1)
    assert alice_client.post(link).status_code == 302
    alice.refresh_from_db()
    assert alice.email == "new@example.com"
    assert list(alice.emailaddress_set.values_list("email", flat=True)) == ["new@example.com"]
    notice = mail.outbox[-1]
    assert notice.to == ["alice@example.com"]
    assert "alice@example.com" in notice.body and "new@example.com" in notice.body
