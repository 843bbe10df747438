import pytest

from accounts.models import ApiKey
from accounts.selectors import api_key_get_user
from accounts.services import api_key_issue, api_key_touch

pytestmark = pytest.mark.django_db


def test_api_key_is_stored_hashed_and_found_by_the_raw_key(alice):
    issued = api_key_issue(user=alice)
    stored = ApiKey.objects.get(user=alice)
    assert issued.raw not in (stored.key_hash, stored.prefix)
    assert stored.key_hash == ApiKey.hash(issued.raw)
    assert api_key_get_user(raw_key=issued.raw) == alice


def test_regenerating_the_key_makes_the_old_one_stop_working(alice):
    old = api_key_issue(user=alice).raw
    new = api_key_issue(user=alice).raw
    assert api_key_get_user(raw_key=old) is None
    assert api_key_get_user(raw_key=new) == alice
    assert ApiKey.objects.filter(user=alice).count() == 1


@pytest.mark.parametrize("raw", ["", "wrong", "x" * 1000])
def test_unknown_keys_find_nobody(alice, raw):
    api_key_issue(user=alice)
    assert api_key_get_user(raw_key=raw) is None


def test_suspended_key_or_inactive_customer_finds_nobody(alice):
    raw = api_key_issue(user=alice).raw
    ApiKey.objects.filter(user=alice).update(is_active=False)
    assert api_key_get_user(raw_key=raw) is None
    ApiKey.objects.filter(user=alice).update(is_active=True)
    alice.is_active = False
    alice.save()
    assert api_key_get_user(raw_key=raw) is None


def test_touch_records_last_use(alice):
    issued = api_key_issue(user=alice)
    api_key_touch(api_key=issued.api_key, ip="127.0.0.1")
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    assert stored.last_used_at is not None
    assert stored.last_used_ip == "127.0.0.1"
