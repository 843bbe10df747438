"""allauth's rate limits on sign-up and password reset, per client address (ACCOUNT_RATE_LIMITS
from SIGNUP_THROTTLE_* and PASSWORD_RESET_THROTTLE_*, panel/ratelimits.py)."""

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts.models import User
from panel.ratelimits import account_rate_limits

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def limits(settings, *, signup=(10, 3600), reset=(5, 3600)):
    settings.ACCOUNT_RATE_LIMITS = account_rate_limits(
        login=(5, 50, 900), signup=signup, reset=reset
    )


def signup(username: str, addr: str = "10.1.1.1", password: str = "a-long-Passphrase-9"):
    form = {
        "username": username,
        "email": f"{username}@example.com",
        "password1": password,
        "password2": password,
        "accept_terms": "on",
    }
    # A fresh client each time: a signed-in customer is sent home before any counting.
    return Client().post(reverse("account_signup"), form, REMOTE_ADDR=addr)


def test_signups_from_one_address_are_limited_with_a_clear_message(settings):
    limits(settings, signup=(3, 3600))
    assert signup("carol").status_code == 302
    assert signup("dave", password="123").status_code == 200  # refused forms count too
    assert signup("erin").status_code == 302
    response = signup("frank")
    assert response.status_code == 429
    assert "Too many requests" in response.content.decode()
    assert not User.objects.filter(username="frank").exists()
    # Another address is not limited, and a plain visit to the page still works.
    assert signup("frank", addr="10.1.1.2").status_code == 302
    assert Client().get(reverse("account_signup"), REMOTE_ADDR="10.1.1.1").status_code == 200


def test_signup_limit_off_with_zero(settings):
    limits(settings, signup=(0, 3600))
    assert settings.ACCOUNT_RATE_LIMITS["signup"] == ""
    for i in range(4):
        assert signup(f"user{i}").status_code == 302


def test_password_reset_requests_are_limited_per_address(settings, alice):
    limits(settings, reset=(2, 3600))

    def ask(addr="10.2.2.2", email="alice@example.com"):
        return Client().post(reverse("account_reset_password"), {"email": email}, REMOTE_ADDR=addr)

    assert ask().status_code == 302
    assert ask().status_code == 302
    refused = ask(email="bob@example.com")
    assert refused.status_code == 429
    assert len(mail.outbox) == 2  # the refused request mailed nobody
    assert ask(addr="10.3.3.3", email="carol@example.com").status_code == 302


def test_the_throttle_settings_become_allauths_rate_limits():
    rates = account_rate_limits(login=(5, 50, 900), signup=(10, 3600), reset=(0, 3600))
    assert rates == {
        "login_failed": "50/900s/ip,5/900s/key",
        "signup": "10/3600s/ip",
        "reset_password": "",
    }
