"""A provider's timeouts are bounded below the window after which an unanswered refill or
cancel is sent again, so a slow call can never be asked twice: model validation (the admin
shows the error at the field), a database constraint, and the re-send window's one constant."""

import inspect
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from orders.services import requests
from providers.client import ApiV2Client
from providers.models import MAX_TIMEOUT_SECONDS, REQUEST_RESEND_AFTER, Provider

pytestmark = pytest.mark.django_db


def _provider(**fields) -> Provider:
    provider = Provider(name="slow", api_url="https://slow.example/api/v2", **fields)
    provider.set_api_key("key-slow-1234")
    return provider


def test_the_bound_comes_from_the_resend_window():
    assert requests.STUCK_SENDING is REQUEST_RESEND_AFTER  # one constant, not two literals
    assert timedelta(minutes=15) == REQUEST_RESEND_AFTER
    # The longest call: connect + read (each at the bound) + the client's limit on reading a
    # body. It ends well inside the window.
    total = inspect.signature(ApiV2Client).parameters["total_timeout"].default
    longest = 2 * MAX_TIMEOUT_SECONDS + total
    assert longest < REQUEST_RESEND_AFTER.total_seconds()


@pytest.mark.parametrize("field", ["read_timeout", "connect_timeout"])
def test_a_timeout_above_the_bound_is_refused_at_the_field(field):
    provider = _provider(**{field: MAX_TIMEOUT_SECONDS + 1})
    with pytest.raises(ValidationError) as exc:
        provider.full_clean()
    assert list(exc.value.message_dict) == [field]
    assert f"{MAX_TIMEOUT_SECONDS:g}" in exc.value.message_dict[field][0]
    _provider(**{field: MAX_TIMEOUT_SECONDS}).full_clean()  # the bound itself is fine


@pytest.mark.parametrize(
    "fields",
    [
        {"read_timeout": 3600.0},
        {"connect_timeout": MAX_TIMEOUT_SECONDS + 0.5},
        {"read_timeout": 0.5},
        {"connect_timeout": 0.1},
    ],
)
def test_the_database_refuses_unbounded_timeouts(fields):
    provider = _provider()
    provider.save()
    with pytest.raises(IntegrityError, match="provider_timeouts_bounded"), transaction.atomic():
        Provider.objects.filter(pk=provider.pk).update(**fields)


def test_the_admin_form_shows_the_error_at_the_read_timeout(client, staff):
    provider = _provider()
    provider.save()
    client.force_login(staff)
    url = reverse("admin:providers_provider_change", args=[provider.pk])
    data = {
        "name": "slow", "api_url": provider.api_url, "api_key": "", "currency": "USD",
        "exchange_rate": "1", "is_enabled": "on", "connect_timeout": "5", "read_timeout": "3600",
        "status_batch_size": "100", "markup_percent": "", "low_balance_threshold": "",
    }  # fmt: skip
    response = client.post(url, data)
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.errors) == ["read_timeout"]
    assert f"less than or equal to {MAX_TIMEOUT_SECONDS:g}" in form.errors["read_timeout"][0]
    provider.refresh_from_db()
    assert provider.read_timeout == 30.0
