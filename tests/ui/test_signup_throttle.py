"""Sign-up throttling per address (accounts.throttle.signup_throttle_hit)."""

import pytest
from django.core.cache import cache
from django.test import Client, override_settings
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def signup(username: str, addr: str = "10.1.1.1", password: str = "a-long-Passphrase-9"):
    form = {
        "username": username,
        "email": f"{username}@example.com",
        "password1": password,
        "password2": password,
    }
    # A fresh client each time: a signed-in customer is sent home before any counting.
    return Client().post(reverse("signup"), form, REMOTE_ADDR=addr)


def test_signups_from_one_address_are_limited_with_a_clear_message(settings):
    settings.SIGNUP_THROTTLE_ATTEMPTS = 3
    settings.SIGNUP_THROTTLE_SECONDS = 3600
    assert signup("carol").status_code == 302
    assert signup("dave", password="123").status_code == 200  # refused forms count too
    assert signup("erin").status_code == 302
    response = signup("frank")
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many sign-ups from your network" in body and "minute" in body
    assert 'value="frank"' in body  # the form is kept, the password is not
    assert "a-long-Passphrase-9" not in body
    assert not User.objects.filter(username="frank").exists()
    # Another address is not limited, and a plain visit to the page still works.
    assert signup("frank", addr="10.1.1.2").status_code == 302
    assert Client().get(reverse("signup"), REMOTE_ADDR="10.1.1.1").status_code == 200


def test_signup_throttle_off_with_zero(settings):
    settings.SIGNUP_THROTTLE_ATTEMPTS = 0
    for i in range(4):
        assert signup(f"user{i}").status_code == 302


def test_a_cache_outage_lets_signups_through(settings, caplog):
    settings.SIGNUP_THROTTLE_ATTEMPTS = 1
    # Inside the test, so that the cache is back before the fixtures clear it.
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        }
    }
    with override_settings(CACHES=unreachable):
        assert signup("carol").status_code == 302
        assert signup("dave").status_code == 302
    assert "signup throttle: the cache failed" in caplog.text


def test_password_reset_requests_are_limited_per_address(settings, alice):
    from django.core import mail

    settings.PASSWORD_RESET_THROTTLE_ATTEMPTS = 2
    settings.PASSWORD_RESET_THROTTLE_SECONDS = 3600

    def ask(addr="10.2.2.2"):
        return Client().post(
            reverse("password_reset"), {"email": "alice@example.com"}, REMOTE_ADDR=addr
        )

    assert ask().status_code == 302
    assert ask().status_code == 302
    refused = ask()
    assert refused.status_code == 429
    assert "Too many password reset requests" in refused.content.decode()
    assert len(mail.outbox) == 2  # the refused request mailed nobody
    assert ask(addr="10.3.3.3").status_code == 302  # another address is not limited


def test_a_cache_outage_never_breaks_logging_in(alice, caplog):
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        }
    }
    with override_settings(CACHES=unreachable):
        wrong = Client().post(reverse("login"), {"username": "alice", "password": "nope"})
        right = Client().post(reverse("login"), {"username": "alice", "password": "pw-alice-123"})
    assert wrong.status_code == 200  # the form's own error, not a server error
    assert right.status_code == 302
    assert "login throttle: the cache failed" in caplog.text
