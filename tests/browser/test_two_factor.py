"""allauth in Chromium: sign-up with e-mail verification (the mail read from Django's locmem
outbox: the live server runs in this process), login with an authenticator app's code computed
here, a recovery code that works once, and a staff member made to set up two-factor before the
admin opens. Every page is checked against the Content-Security-Policy (new_page)."""

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.cache import cache
from playwright.sync_api import expect

from accounts.models import User
from tests.browser.conftest import PHONE
from tests.totp import give_second_factor, totp_code

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()  # used codes are remembered in the cache
    yield
    cache.clear()


def test_signup_waits_for_the_emailed_link(new_page, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    page = new_page(viewport=PHONE)
    page.goto("/signup/")
    page.get_by_label("Username").fill("vera")
    page.get_by_label("Email").fill("vera@example.com")
    page.locator("#id_password1").fill("vera-Secret-2026")
    page.locator("#id_password2").fill("short")
    page.get_by_label("I have read and accept the terms of service").check()
    page.get_by_role("button", name="Create account").click()
    # Refused at the field, nothing created, what was typed is still there.
    expect(page.locator("#id_password2_error")).to_be_visible()
    expect(page.get_by_label("Username")).to_have_value("vera")
    assert not User.objects.filter(username="vera").exists()
    page.locator("#id_password1").fill("vera-Secret-2026")
    page.locator("#id_password2").fill("vera-Secret-2026")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Verify Your Email Address")).to_be_visible()
    page.goto("/orders/")
    assert "/accounts/login/" in page.url  # not signed in before the link is followed
    [message] = mail.outbox
    assert message.to == ["vera@example.com"]
    path = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", message.body).group(1)
    page.goto(path)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(lambda url: "/confirm-email/" not in url)
    assert EmailAddress.objects.get(email="vera@example.com").verified
    page.goto("/orders/")
    expect(page.get_by_role("heading", name="Orders")).to_be_visible()


def _password_then(page, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username or e-mail").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url("**/2fa/authenticate/**")


def test_login_asks_for_the_authenticator_code(new_page, alice):
    secret = give_second_factor(alice)
    page = new_page(viewport=PHONE)
    _password_then(page, "alice@example.com", "pw-alice-123")
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Sign In").click()
    expect(page.locator("#id_code_error")).to_be_visible()
    page.get_by_label("Code").fill(totp_code(secret))
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda url: "/2fa/" not in url)
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_a_recovery_code_works_once(new_page, alice):
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    give_second_factor(alice)
    code = RecoveryCodes.activate(alice).get_unused_codes()[0]
    first = new_page()
    _password_then(first, "alice", "pw-alice-123")
    first.get_by_label("Code").fill(code)
    first.get_by_role("button", name="Sign In").click()
    first.wait_for_url(lambda url: "/2fa/" not in url)
    second = new_page()
    _password_then(second, "alice", "pw-alice-123")
    second.get_by_label("Code").fill(code)
    second.get_by_role("button", name="Sign In").click()
    expect(second.locator("#id_code_error")).to_be_visible()
    second.goto("/orders/")
    assert not second.url.split("?")[0].endswith("/orders/")  # not signed in


def test_staff_set_up_two_factor_before_the_admin_opens(new_page, django_user_model):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-12345")
    page = new_page(viewport=PHONE)
    page.goto("/admin/")
    page.wait_for_url("**/accounts/login/**")
    page.get_by_label("Username or e-mail").fill("boss")
    page.get_by_label("Password").fill("pw-boss-12345")
    page.get_by_role("button", name="Log in", exact=True).click()
    # Sent to set up an authenticator app; first the password once more.
    page.wait_for_url("**/reauthenticate/**")
    expect(page.get_by_text("Staff need a second factor")).to_be_visible()
    page.get_by_label("Password").fill("pw-boss-12345")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/2fa/totp/activate/**")
    page.goto("/admin/")  # still no admin
    page.wait_for_url("**/2fa/totp/activate/**")
    secret = page.locator("#authenticator_secret").input_value()
    page.get_by_label("Authenticator code").fill(totp_code(secret))
    page.get_by_role("button", name="Activate").click()
    page.wait_for_url("**/2fa/recovery-codes/**")
    page.goto("/admin/")
    expect(page.locator("#cockpit")).to_be_visible()
