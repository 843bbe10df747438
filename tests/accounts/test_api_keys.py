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


def test_the_key_lookup_builds_the_user_and_key_the_orm_reads(alice, django_assert_num_queries):
    """api_key_get_user's one statement (written once from the models) gives the same objects
    as the ORM: every field of the user and of the key, the allowlist decoded from JSON, the
    key cached on the user both ways, and the wallet's balance."""
    from accounts.selectors import wallet_balance

    raw = api_key_issue(user=alice).raw
    ApiKey.objects.filter(user=alice).update(allowed_ips=["203.0.113.0/24", "2001:db8::1"])
    with django_assert_num_queries(1):
        user = api_key_get_user(raw_key=raw)
        assert user is not None
        key = user.api_key
        assert key.user is user
        balance = wallet_balance(user=user)
    orm_user = type(alice).objects.get(pk=alice.pk)
    orm_key = ApiKey.objects.get(user=alice)
    for field in type(alice)._meta.concrete_fields:
        assert getattr(user, field.attname) == getattr(orm_user, field.attname), field.name
    for field in ApiKey._meta.concrete_fields:
        assert getattr(key, field.attname) == getattr(orm_key, field.attname), field.name
    assert key.allowed_ips == ["203.0.113.0/24", "2001:db8::1"]
    assert key.allows_ip("203.0.113.9") and not key.allows_ip("198.51.100.1")
    assert balance == alice.wallet.balance
    assert not user._state.adding and user._state.db == "default"


def test_the_key_lookup_of_a_customer_without_a_wallet_reads_zero(alice):
    from accounts.models import Wallet
    from accounts.selectors import ZERO_BALANCE, wallet_balance

    raw = api_key_issue(user=alice).raw
    Wallet.objects.filter(user=alice).delete()
    user = api_key_get_user(raw_key=raw)
    assert user == alice and wallet_balance(user=user) == ZERO_BALANCE
