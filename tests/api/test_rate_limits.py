"""Rate limits per key and per address, counted in a sliding window in the shared cache (Redis),
answered with a clear JSON error and a Retry-After header."""

import time

import pytest
from django.core.cache import cache

from accounts.models import ApiKey
from panel.ratelimits import parse_rate_limit
from tests.api.conftest import API_URL, decode

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("60/10s", (60, 10)),
        ("1000/h", (1000, 3600)),
        ("5 / 2m", (5, 120)),
        ("3/sec", (3, 1)),
        ("10/1d", (10, 86400)),
        (None, None),
        ("", None),
    ],
)
def test_parse_rate_limit(spec, parsed):
    assert parse_rate_limit(spec) == parsed


@pytest.mark.parametrize("spec", ["60", "a/10s", "0/10s", "10/0s", "10/10x"])
def test_parse_rate_limit_refuses_nonsense(spec):
    with pytest.raises(ValueError, match="rate limit"):
        parse_rate_limit(spec)


def test_per_key_limit(client, settings, alice, alice_key, bob_key):
    settings.API_RATE_LIMIT_PER_KEY = "3/60s"
    for _ in range(3):
        assert "balance" in decode(client.post(API_URL, {"key": alice_key, "action": "balance"}))
    used_at = ApiKey.objects.get(user=alice).last_used_at
    response = client.post(API_URL, {"key": alice_key, "action": "balance"})
    answer = decode(response)
    assert answer["error"].startswith(
        "Too many requests: at most 3 per 60 seconds for this API key."
    )
    assert 1 <= int(response["Retry-After"]) <= 60
    # A refused call is not a use of the key, and bob's key has its own count.
    assert ApiKey.objects.get(user=alice).last_used_at == used_at
    assert "balance" in decode(client.post(API_URL, {"key": bob_key, "action": "balance"}))


def test_per_address_limit_counts_bad_keys_too(client, settings, alice_key):
    settings.API_RATE_LIMIT_PER_IP = "2/60s"
    other = {"REMOTE_ADDR": "10.1.2.3"}
    assert (
        decode(client.post(API_URL, {"key": "guess-1", "action": "balance"}, **other))["error"]
        == "Invalid API key."
    )
    assert (
        decode(client.post(API_URL, {"key": "guess-2", "action": "balance"}, **other))["error"]
        == "Invalid API key."
    )
    response = client.post(API_URL, {"key": alice_key, "action": "balance"}, **other)
    assert decode(response)["error"].startswith(
        "Too many requests: at most 2 per 60 seconds from this address."
    )
    assert response.has_header("Retry-After")
    # Another address is not affected.
    assert "balance" in decode(client.post(API_URL, {"key": alice_key, "action": "balance"}))


def test_the_limit_lives_in_the_shared_cache(client, settings, alice_key):
    """Another process (another gunicorn worker) sees the same count: it is in the cache."""
    settings.API_RATE_LIMIT_PER_KEY = "2/60s"
    decode(client.post(API_URL, {"key": alice_key, "action": "balance"}))
    keys = [k for k in cache._cache.get_client().keys("*apiv2:rl:key:*")]
    assert len(keys) == 1


def test_a_cache_outage_lets_calls_through(client, settings, alice_key, caplog):
    settings.API_RATE_LIMIT_PER_KEY = "1/60s"
    settings.CACHES = {
        "default": {
            "BACKEND": "panel.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        }
    }
    for _ in range(3):
        assert "balance" in decode(client.post(API_URL, {"key": alice_key, "action": "balance"}))
    assert "rate limit check failed" in caplog.text


def test_other_cache_backends_count_too(client, settings, alice_key):
    settings.API_RATE_LIMIT_PER_KEY = "2/60s"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "rl"}
    }
    for _ in range(2):
        assert "balance" in decode(client.post(API_URL, {"key": alice_key, "action": "balance"}))
    answer = decode(client.post(API_URL, {"key": alice_key, "action": "balance"}))
    assert answer["error"].startswith("Too many requests")


def test_limits_can_be_turned_off(client, settings, alice_key):
    settings.API_RATE_LIMIT_PER_KEY = None
    settings.API_RATE_LIMIT_PER_IP = ""
    for _ in range(5):
        assert "balance" in decode(client.post(API_URL, {"key": alice_key, "action": "balance"}))


def test_a_malformed_limit_is_loud(client, settings, alice_key, caplog):
    settings.API_RATE_LIMIT_PER_IP = "60"
    answer = decode(client.post(API_URL, {"key": alice_key, "action": "balance"}))
    assert answer == {"error": "Internal error: the request was not completed. Try again later."}
    assert "A rate limit looks like '60/10s'" in caplog.text


@pytest.fixture
def clock(monkeypatch):
    """The wall clock the limiter reads, set by the test: [seconds since the epoch]."""
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


@pytest.mark.parametrize("backend", ["redis", "locmem"])
def test_across_a_window_edge_no_more_than_the_limit_passes(
    client, settings, alice_key, clock, backend
):
    # A fixed-window counter let 3 calls through at the end of one 10-second window and 3 more
    # at the start of the next: 6 within 0.2 s under a limit of 3 per 10 s.
    if backend == "locmem":
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "e"}
        }
    settings.API_RATE_LIMIT_PER_KEY = "3/10s"

    def call():
        return client.post(API_URL, {"key": alice_key, "action": "balance"})

    clock[0] = 1_000_009.9  # the last tenth of a second of a 10-second window
    for _ in range(3):
        assert "balance" in decode(call())
    clock[0] = 1_000_010.1  # the next window
    refused = call()
    assert decode(refused)["error"] == (
        "Too many requests: at most 3 per 10 seconds for this API key. Retry after 10 seconds."
    )
    assert refused["Retry-After"] == "10"  # 9.8 s until the first of the three leaves
    clock[0] = 1_000_019.85  # the three are still within the last 10 seconds
    assert "Too many requests" in decode(call())["error"]
    clock[0] = 1_000_019.95  # they are not: three more, and no fourth
    for _ in range(3):
        assert "balance" in decode(call())
    assert "Too many requests" in decode(call())["error"]


def test_a_key_holds_at_most_the_limit(client, settings, alice_key):
    """Refused calls are not stored: a client hammering the API cannot grow the cache entry."""
    settings.API_RATE_LIMIT_PER_KEY = "3/60s"
    for _ in range(10):
        client.post(API_URL, {"key": alice_key, "action": "balance"})
    redis = cache._cache.get_client()
    [key] = redis.keys("*apiv2:rl:key:*")
    assert redis.zcard(key) == 3
    assert 0 < redis.pttl(key) <= 60_000


def test_behind_proxies_the_client_written_left_end_of_x_forwarded_for_is_ignored(
    client, settings, alice, alice_key
):
    # The left-most X-Forwarded-For entry is whatever the client wrote: keyed on it, one client
    # got a fresh per-address limit on every call, and the key's "last used from" was a lie.
    settings.API_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    settings.API_RATE_LIMIT_PER_IP = "2/60s"
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for n in range(2):
        forwarded = f"192.0.2.{n}, 203.0.113.7"  # our proxy appended the real address
        answer = client.post(
            API_URL,
            {"key": alice_key, "action": "balance"},
            HTTP_X_FORWARDED_FOR=forwarded,
            **proxy,
        )
        assert "balance" in decode(answer)
    assert ApiKey.objects.get(user=alice).last_used_ip == "203.0.113.7"
    refused = client.post(
        API_URL,
        {"key": alice_key, "action": "balance"},
        HTTP_X_FORWARDED_FOR="192.0.2.99, 203.0.113.7",
        **proxy,
    )
    assert "from this address" in decode(refused)["error"]
    # Two proxies of ours: the client is the second entry from the right.
    settings.API_TRUSTED_PROXY_COUNT = 2
    other = client.post(
        API_URL,
        {"key": alice_key, "action": "balance"},
        HTTP_X_FORWARDED_FOR="192.0.2.99, 198.51.100.4, 10.0.0.2",
        **proxy,
    )
    assert "balance" in decode(other)
    assert ApiKey.objects.get(user=alice).last_used_ip == "198.51.100.4"


def test_both_windows_are_counted_in_one_call_in_order():
    """rate_limit_hit_all: each window counts the call until one refuses it; the ones after the
    refusing window count nothing (a call the address's window refuses is not a use of the
    key)."""
    from accounts.ratelimit import rate_limit_clear, rate_limit_hit_all, rate_limit_wait

    ip, key = "test:all:ip", "test:all:key"
    for name in (ip, key):
        rate_limit_clear(key=name)
    assert rate_limit_hit_all([(ip, 3, 10), (key, 1, 10)]) == (-1, 0)
    refused, wait = rate_limit_hit_all([(ip, 3, 10), (key, 1, 10)])
    assert refused == 1 and 1 <= wait <= 10  # the key's window is full; the address counted it
    assert rate_limit_hit_all([(ip, 3, 10), (key, 2, 10)]) == (-1, 0)  # address 3, key 2
    refused, _ = rate_limit_hit_all([(ip, 3, 10), (key, 5, 10)])
    assert refused == 0  # the address is full: the key's window did not count this call
    assert rate_limit_wait(key=key, limit=3, period=10) == 0
    assert rate_limit_wait(key=key, limit=2, period=10) >= 1


def test_the_limiter_makes_its_script_once_and_loads_it_again_when_the_server_forgot_it(
    client, alice_key, monkeypatch
):
    """The script (its hash, its kept connection) is made once per process; EVALSHA runs it,
    and when the server does not know it (a new or restarted server, SCRIPT FLUSH) it is
    loaded and the call still counted."""
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    from accounts import ratelimit

    if not isinstance(caches["default"], RedisCache):
        pytest.skip("the limiter runs its Lua script only with Django's Redis cache")
    made = []
    original = ratelimit._Script.__init__

    def spy(self, backend, lua):
        made.append(lua)
        original(self, backend, lua)

    monkeypatch.setattr(ratelimit._Script, "__init__", spy)
    ratelimit._scripts.clear()
    redis_client = cache._cache.get_client()
    for call in range(5):
        if call == 2:
            redis_client.script_flush()
        decode(client.post(API_URL, {"key": alice_key, "action": "balance"}))
    assert made == [ratelimit._SLIDING_WINDOWS_LUA]
    [key] = redis_client.keys("*apiv2:rl:key:*")
    assert redis_client.zcard(key) == 5  # every call counted, the one after the flush too


def test_a_client_address_is_parsed_once_and_a_long_header_entry_is_not_kept():
    """Addresses are parsed once per process (a cache of a few thousand); an entry longer than
    any written address is no address, and never enters the cache (a header's text is the
    client's to make long)."""
    from accounts.ratelimit import _parse_address, _parse_short_address

    _parse_short_address.cache_clear()
    assert _parse_address(" [2001:db8::1]:443 ") == "2001:db8::1"
    assert _parse_address("[2001:db8::1]:443") == "2001:db8::1"
    assert _parse_short_address.cache_info().hits == 1
    assert _parse_address("[::ffff:203.0.113.255]:65535") == "::ffff:cb00:71ff"
    assert _parse_address("1" * 65) is None and _parse_address("x" * 5000) is None
    assert _parse_short_address.cache_info().currsize == 2
