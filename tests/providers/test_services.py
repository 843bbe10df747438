# ruff: noqa: F811 - the fixtures imported from tests.catalog.conftest are used as arguments
"""providers.services against the sandbox (real HTTP) and a controllable loopback upstream."""

from decimal import Decimal as D

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from providers.client import ProviderError
from providers.models import Provider, ProviderCall
from providers.services import (
    provider_check_balance,
    provider_clear_out_of_funds,
    provider_create,
    provider_mark_out_of_funds,
    provider_test_connection,
)
from tests.catalog.conftest import (  # noqa: F401 - fixtures
    clean_sandbox,
    provider,
    sandbox,
    sandbox_provider,
    upstream,
)
from tests.catalog.upstream import item

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _admins(settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_provider_create_encrypts_the_key_and_keeps_a_hint(db):
    p = provider_create(name="x", api_url="https://x.example/api/v2", api_key="secret-abcd",
                        currency="eur")  # fmt: skip
    p.refresh_from_db()
    assert "secret" not in p.api_key_encrypted and p.api_key == "secret-abcd"
    assert p.api_key_hint == "abcd" and p.currency == "EUR"


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"api_url": "not a url"}, "api_url"),
        ({"api_key": "  "}, "api_key"),
        ({"name": ""}, "name"),
        ({"exchange_rate": D(0)}, "exchange_rate"),
    ],
)
def test_provider_create_rejects_bad_input(db, kw, field):
    args = {"name": "x", "api_url": "https://x.example/api/v2", "api_key": "k", **kw}
    with pytest.raises(ValidationError) as exc:
        provider_create(**args)
    assert field in exc.value.message_dict
    assert not Provider.objects.exists()


def test_connection_test_against_the_sandbox_detects_capabilities(sandbox_provider):
    Provider.objects.filter(pk=sandbox_provider.pk).update(supports_dripfeed=False)
    sandbox_provider.refresh_from_db()
    report = provider_test_connection(provider=sandbox_provider)
    assert report.ok and report.errors == []
    assert report.balance is not None and report.services_count > 10
    assert report.detected == {"supports_dripfeed": True, "supports_cancel": True}
    sandbox_provider.refresh_from_db()
    assert sandbox_provider.supports_dripfeed and sandbox_provider.balance == report.balance
    assert ProviderCall.objects.filter(provider=sandbox_provider, ok=True).count() == 2


def test_connection_test_detects_no_dripfeed_and_keeps_unknown_flags(provider, upstream):
    upstream.catalog = [{k: v for k, v in item(1).items() if k != "cancel"}]
    report = provider_test_connection(provider=provider)
    assert report.detected == {"supports_dripfeed": False}
    provider.refresh_from_db()
    assert not provider.supports_dripfeed and provider.supports_cancel


def test_connection_test_reports_a_bad_key(provider, upstream):
    upstream.key = "other"
    provider.set_api_key("wrong-key")
    provider.save()
    report = provider_test_connection(provider=provider)
    assert not report.ok
    assert any("Invalid API key" in e for e in report.errors)


def test_connection_test_reports_a_currency_mismatch(provider, upstream):
    upstream.currency = "RUB"
    report = provider_test_connection(provider=provider)
    assert report.ok and "bills in RUB" in " ".join(report.notes)


def test_low_balance_mails_admins_once_per_episode(
    provider, upstream, django_capture_on_commit_callbacks
):
    Provider.objects.filter(pk=provider.pk).update(low_balance_threshold=D("50"))
    provider.refresh_from_db()
    upstream.balance = D("10")
    with django_capture_on_commit_callbacks(execute=True):  # staff are told after the commit
        assert provider_check_balance(provider=provider) == D("10")
        provider_check_balance(provider=provider)
    assert len(mail.outbox) == 1 and "low on balance" in mail.outbox[0].subject
    provider.refresh_from_db()
    assert provider.is_low_on_balance and provider.low_balance_alerted_at is not None
    upstream.balance = D("80")  # topped up: the episode ends
    provider_check_balance(provider=provider)
    provider.refresh_from_db()
    assert provider.low_balance_alerted_at is None and not provider.is_low_on_balance
    upstream.balance = D("5")  # a new episode: a new e-mail
    with django_capture_on_commit_callbacks(execute=True):
        provider_check_balance(provider=provider)
    assert len(mail.outbox) == 2


def test_balance_check_failure_raises_and_is_recorded(sandbox_provider, clean_sandbox):
    clean_sandbox.set_fault("http500", actions=["balance"], count=1)
    with pytest.raises(ProviderError):
        provider_check_balance(provider=sandbox_provider)
    sandbox_provider.refresh_from_db()
    assert sandbox_provider.balance is None
    assert ProviderCall.objects.get(action="balance").error_kind == "http_error"


def test_out_of_funds_is_flagged_once_and_survives_a_balance_check(
    provider, upstream, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # staff are told after the commit
        assert provider_mark_out_of_funds(provider=provider, message="Not enough funds")
        assert not provider_mark_out_of_funds(provider=provider)
    assert len(mail.outbox) == 1
    provider.refresh_from_db()
    assert provider.out_of_funds_since is not None
    # Some money upstream does not prove the next order fits: only a placement clears the flag.
    upstream.balance = D("10")
    provider_check_balance(provider=provider)
    provider.refresh_from_db()
    assert provider.out_of_funds_since is not None
    assert provider_clear_out_of_funds(provider=provider)
    assert not provider_clear_out_of_funds(provider=provider)
    assert len(mail.outbox) == 1
