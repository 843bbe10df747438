"""An API key's allowlist of addresses, set on the API page and checked by /api/v2; the flag on
keys unused for 90 days."""

from datetime import timedelta

import pytest
import requests
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import MAX_ALLOWED_IPS, ApiKey, ip_allowlist_clean
from accounts.selectors import api_key_list_stale
from accounts.services import api_key_issue, api_key_set_allowlist

pytestmark = pytest.mark.django_db


def _call(url: str, key: str) -> dict:
    response = requests.post(url, data={"key": key, "action": "balance"}, timeout=10)
    assert response.status_code == 200
    return response.json()


@pytest.mark.django_db(transaction=True)
def test_allowlist_refuses_other_addresses_and_accepts_its_own_over_http(
    live_server, alice, alice_key
):
    url = live_server.url + "/api/v2"
    api_key = ApiKey.objects.get(user=alice)
    api_key_set_allowlist(api_key=api_key, allowed_ips=["203.0.113.0/24", "2001:db8::1"])
    answer = _call(url, alice_key)
    assert answer == {
        "error": "This API key may not be used from 127.0.0.1: the key's allowed addresses are "
        "set on the API page of the panel."
    }
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is None  # a refused call is no use
    api_key_set_allowlist(api_key=api_key, allowed_ips=["203.0.113.0/24", "127.0.0.0/8"])
    assert _call(url, alice_key) == {"balance": "50.00000", "currency": "USD"}
    api_key_set_allowlist(api_key=api_key, allowed_ips=[])
    assert _call(url, alice_key) == {"balance": "50.00000", "currency": "USD"}


def test_allowlist_check_costs_no_query(api, alice, alice_key):
    api_key_set_allowlist(api_key=ApiKey.objects.get(user=alice), allowed_ips=["192.0.2.0/24"])
    with CaptureQueriesContext(connection) as queries:
        answer = api(alice_key, action="balance")
    assert "may not be used from" in answer["error"]
    assert len(queries) == 1  # the key (with its customer); nothing more


def test_allowlist_follows_the_client_ip_header_behind_a_proxy(api, alice, alice_key, settings):
    settings.API_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    api_key_set_allowlist(api_key=ApiKey.objects.get(user=alice), allowed_ips=["198.51.100.7"])
    assert api(alice_key, action="balance", headers={"X-Forwarded-For": "198.51.100.7"}) == {
        "balance": "50.00000",
        "currency": "USD",
    }
    assert "error" in api(alice_key, action="balance", headers={"X-Forwarded-For": "10.1.1.1"})


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (["203.0.113.7"], ["203.0.113.7"]),
        ([" 203.0.113.7/32 ", "", "203.0.113.7"], ["203.0.113.7"]),
        (["203.0.113.9/24"], ["203.0.113.0/24"]),
        (["2001:DB8::/32"], ["2001:db8::/32"]),
    ],
)
def test_allowlist_entries_are_normalised(entries, expected):
    assert ip_allowlist_clean(entries) == expected


@pytest.mark.parametrize("entry", ["example.com", "300.1.1.1", "10.0.0.0/33", "1.2.3.4/x"])
def test_allowlist_refuses_what_is_not_an_address(entry):
    with pytest.raises(ValidationError, match="is not an IP address"):
        ip_allowlist_clean([entry])


def test_allowlist_is_capped():
    with pytest.raises(ValidationError, match=f"At most {MAX_ALLOWED_IPS}"):
        ip_allowlist_clean([f"192.0.2.{i}" for i in range(MAX_ALLOWED_IPS + 1)])


def test_the_api_page_saves_the_allowlist(client, alice, alice_key):
    client.force_login(alice)
    response = client.post(
        reverse("api_key_allowlist"), {"allowed_ips": "203.0.113.7\n198.51.100.0/24"}
    )
    assert response.status_code == 302
    assert ApiKey.objects.get(user=alice).allowed_ips == ["203.0.113.7", "198.51.100.0/24"]
    page = client.get(reverse("api_docs")).content.decode()
    assert "203.0.113.7\n198.51.100.0/24</textarea>" in page


def test_bad_allowlist_input_gets_a_field_error_keeps_the_text_and_saves_nothing(
    client, alice, alice_key
):
    api_key_set_allowlist(api_key=ApiKey.objects.get(user=alice), allowed_ips=["192.0.2.1"])
    client.force_login(alice)
    typed = "203.0.113.7\nmy-office-router"
    response = client.post(reverse("api_key_allowlist"), {"allowed_ips": typed})
    assert response.status_code == 400
    form = response.context["allowlist_form"]
    assert form.errors["allowed_ips"] == [
        "“my-office-router” is not an IP address or a network such as 203.0.113.0/24."
    ]
    body = response.content.decode()
    assert 'id="id_allowed_ips_error"' in body
    assert typed in body  # what was typed is still in the field
    assert ApiKey.objects.get(user=alice).allowed_ips == ["192.0.2.1"]


def test_allowlist_needs_a_key_and_a_post(client, alice):
    client.force_login(alice)
    assert client.get(reverse("api_key_allowlist")).status_code == 405
    response = client.post(reverse("api_key_allowlist"), {"allowed_ips": "203.0.113.7"})
    assert response.status_code == 302
    assert not ApiKey.objects.exists()


def test_a_regenerated_key_keeps_the_allowlist(alice, alice_key):
    api_key_set_allowlist(api_key=ApiKey.objects.get(user=alice), allowed_ips=["192.0.2.1"])
    api_key_issue(user=alice)
    assert ApiKey.objects.get(user=alice).allowed_ips == ["192.0.2.1"]


# --- Keys unused for 90 days --------------------------------------------------------------------


def test_stale_keys_are_those_unused_or_never_used_for_90_days(alice, bob, rich):
    now = timezone.now()
    keys = {}
    for user in (alice, bob, rich):
        api_key_issue(user=user)
        keys[user.username] = ApiKey.objects.get(user=user)
    ApiKey.objects.filter(user=alice).update(
        created_at=now - timedelta(days=200), last_used_at=now - timedelta(days=91)
    )
    ApiKey.objects.filter(user=bob).update(created_at=now - timedelta(days=91))  # never used
    ApiKey.objects.filter(user=rich).update(
        created_at=now - timedelta(days=200), last_used_at=now - timedelta(days=89)
    )
    stale = set(api_key_list_stale(now=now).values_list("user__username", flat=True))
    assert stale == {"alice", "bob"}
    ApiKey.objects.filter(user=bob).update(is_active=False)  # a disabled key is no concern
    assert set(api_key_list_stale(now=now).values_list("user__username", flat=True)) == {"alice"}


def test_the_api_page_and_the_admin_flag_a_stale_key(client, staff, alice, bob):
    api_key_issue(user=alice)
    api_key_issue(user=bob)
    ApiKey.objects.filter(user=alice).update(created_at=timezone.now() - timedelta(days=120))
    client.force_login(alice)
    assert 'data-testid="stale-key"' in client.get(reverse("api_docs")).content.decode()
    client.force_login(bob)
    assert 'data-testid="stale-key"' not in client.get(reverse("api_docs")).content.decode()
    client.force_login(staff)
    response = client.get(reverse("admin:accounts_apikey_changelist"), {"stale": "yes"})
    assert [k.user.username for k in response.context["cl"].result_list] == ["alice"]
    assert "unused 90+ days" in response.content.decode().lower()
