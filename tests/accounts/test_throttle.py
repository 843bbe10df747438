"""The one limiter (accounts.ratelimit: a sliding window, Redis or any other cache) and the one
client_ip, as the web throttles and the reseller API use them."""

import time

import pytest
from django.core.cache import cache
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts import ratelimit
from accounts.ratelimit import (
    client_ip,
    rate_limit_clear,
    rate_limit_hit,
    rate_limit_record,
    rate_limit_wait,
)
from tests.panel.test_settings import FERNET, GOOD_SECRET, load_settings
from tests.threads import run_in_threads

pytestmark = pytest.mark.django_db

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t"}}


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(params=["redis", "locmem"])
def backend(request, settings):
    """Each limiter test runs on Redis (the Lua script) and on the portable fallback."""
    if request.param == "locmem":
        settings.CACHES = LOCMEM
    return request.param


@pytest.fixture
def clock(monkeypatch):
    """The wall clock the limiter reads, set by the test: [seconds since the epoch]."""
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


# --- The limiter --------------------------------------------------------------------------------


def test_the_limiter_never_lets_more_than_the_limit_through_in_any_window(backend, clock):
    for second in (0, 1, 2):
        clock[0] = 1_000_000 + second
        assert rate_limit_hit(key="k", limit=3, period=10) == 0
    clock[0] = 1_000_009.5
    assert rate_limit_hit(key="k", limit=3, period=10) == 1  # the first leaves at 1_000_010
    clock[0] = 1_000_010.0  # exactly 10 s after the first: it is out of the window
    assert rate_limit_hit(key="k", limit=3, period=10) == 0
    assert rate_limit_hit(key="k", limit=3, period=10) == 1  # the second leaves at 1_000_011
    clock[0] = 1_000_012.0  # only the one at 10.0 is left in the window
    assert rate_limit_hit(key="k", limit=3, period=10) == 0
    assert rate_limit_hit(key="k", limit=3, period=10) == 0
    assert rate_limit_hit(key="k", limit=3, period=10) == 8  # 10.0 + 10 - 12
    assert rate_limit_hit(key="other", limit=3, period=10) == 0


def test_wait_counts_nothing_record_counts_always_clear_forgets(backend, clock):
    assert rate_limit_wait(key="k", limit=2, period=60) == 0
    assert rate_limit_wait(key="k", limit=2, period=60) == 0
    rate_limit_record(key="k", limit=2, period=60)
    clock[0] += 30
    rate_limit_record(key="k", limit=2, period=60)
    rate_limit_record(key="k", limit=2, period=60)  # over the limit: still counted
    assert rate_limit_wait(key="k", limit=2, period=60) == 60  # the newest two are kept
    clock[0] += 60
    assert rate_limit_wait(key="k", limit=2, period=60) == 0
    rate_limit_record(key="k", limit=2, period=60)
    rate_limit_record(key="k", limit=2, period=60)
    assert rate_limit_wait(key="k", limit=2, period=60) == 60
    rate_limit_clear(key="k")
    assert rate_limit_wait(key="k", limit=2, period=60) == 0


def test_a_limit_of_zero_is_no_limit(backend):
    for _ in range(3):
        assert rate_limit_hit(key="k", limit=0, period=60) == 0


def test_hits_sent_in_parallel_never_pass_more_than_the_limit(settings):
    # Atomic in one round trip (the Lua script): 16 threads at once, exactly 5 pass.
    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        pytest.skip("atomic across processes needs the Redis cache")
    results = run_in_threads(16, lambda _: rate_limit_hit(key="race", limit=5, period=60))
    assert results.count(0) == 5
    assert cache._cache.get_client().zcard(cache.make_and_validate_key("race")) == 5


# --- One client_ip ------------------------------------------------------------------------------


def test_the_api_and_the_web_pages_use_the_same_client_ip(rf, settings):
    from accounts import adapter
    from panel import api_v2

    assert api_v2.client_ip is adapter.client_ip is ratelimit.client_ip
    # allauth's rate limits (log in, sign up, password reset) count by it too.
    settings.API_CLIENT_IP_HEADER = "HTTP_X_REAL_IP"
    request = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_REAL_IP="203.0.113.7")
    assert adapter.PanelAccountAdapter().get_client_ip(request) == "203.0.113.7"


def ip_of(settings, meta, header=None, trusted=1):
    settings.API_CLIENT_IP_HEADER = header
    settings.API_TRUSTED_PROXY_COUNT = trusted
    return client_ip(RequestFactory().get("/", **meta))


def test_client_ip_without_a_header_setting_is_remote_addr(settings):
    meta = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "192.0.2.1"}
    assert ip_of(settings, meta) == "10.0.0.1"
    assert ip_of(settings, {"REMOTE_ADDR": "not an address"}) is None
    assert ip_of(settings, {"REMOTE_ADDR": "2001:DB8::1"}) == "2001:db8::1"


@pytest.mark.parametrize(
    ("forwarded", "trusted", "expected"),
    [
        ("203.0.113.7", 1, "203.0.113.7"),
        ("192.0.2.66, 203.0.113.7", 1, "203.0.113.7"),  # the left end is the client's own text
        ("192.0.2.66,203.0.113.7", 1, "203.0.113.7"),
        ("192.0.2.66, 203.0.113.7, 10.0.0.2", 2, "203.0.113.7"),
        ("203.0.113.7, 10.0.0.2", 3, "10.0.0.1"),  # shorter than the proxy chain: REMOTE_ADDR
        ("", 1, "10.0.0.1"),
        ("192.0.2.66, unknown", 1, "10.0.0.1"),  # not an address where ours should be
        ("203.0.113.7:5123", 1, "203.0.113.7"),
        ("[2001:db8::7]:443", 1, "2001:db8::7"),
        ("2001:db8::7", 1, "2001:db8::7"),
    ],
)
def test_client_ip_takes_the_entry_the_trusted_proxies_wrote(
    settings, forwarded, trusted, expected
):
    meta = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": forwarded}
    assert ip_of(settings, meta, "HTTP_X_FORWARDED_FOR", trusted) == expected


def test_client_ip_with_a_single_address_header(settings):
    meta = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_REAL_IP": "203.0.113.7"}
    assert ip_of(settings, meta, "HTTP_X_REAL_IP") == "203.0.113.7"
    assert ip_of(settings, {"REMOTE_ADDR": "10.0.0.1"}, "HTTP_X_REAL_IP") == "10.0.0.1"


def test_a_guesser_cannot_escape_the_login_limit_by_writing_x_forwarded_for(alice, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login_failed": "3/15m/key"}
    settings.API_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    proxy = {"REMOTE_ADDR": "10.0.0.1"}

    def attempt(password, forwarded):
        form = {"login": "alice", "password": password}
        return Client().post(
            reverse("account_login"), form, HTTP_X_FORWARDED_FOR=forwarded, **proxy
        )

    for n in range(3):
        assert "not correct" in attempt("wrong", f"192.0.2.{n}, 203.0.113.7").content.decode()
    refused = attempt("pw-alice-123", "192.0.2.99, 203.0.113.7")
    assert "Too many failed login attempts" in refused.content.decode()
    # The customer, at another address behind the same proxy, logs in.
    assert attempt("pw-alice-123", "203.0.113.7, 198.51.100.2").status_code == 302


def test_settings_refuse_a_trusted_proxy_count_below_one():
    env = {"SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": "x", "FIELD_ENCRYPTION_KEYS": FERNET}
    result = load_settings({"DEBUG": "false", **env, "API_TRUSTED_PROXY_COUNT": "0"})
    assert result.returncode != 0
    assert "API_TRUSTED_PROXY_COUNT must be 1 or more" in result.stderr
