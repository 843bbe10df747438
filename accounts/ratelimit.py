"""The reseller API's request limiter (panel/api_v2.py) and the panel's one `client_ip`, which
django-allauth's rate limits on log in, sign up and password reset count by too
(accounts/adapter.py).

The limiter is a sliding window log: the times of the counted requests of one key, newest last.
A request passes while fewer than `limit` of them fall in the last `period` seconds, so no
stretch of `period` seconds ever holds more than `limit` passed requests. (A fixed-window
counter let `limit` through at the end of one window and `limit` more at the start of the next:
twice the limit within a second.) Only the newest `limit` times are kept, so a key never holds
more than `limit` entries whatever a client sends.

- With Django's Redis cache the log is a sorted set, read and written by one Lua script: one
  round trip, atomic across every web process.
- With any other cache backend (the file cache of a Redis-less install, locmem in tests) it is a
  list of times read and written under a lock of this process: exact within one process, only
  approximate across processes.

The functions raise when the cache does; callers choose what to log and let the request through
(a brake on guessing must not take the site down with the cache).
"""

import functools
import hashlib
import ipaddress
import math
import secrets
import threading
import time
import weakref
from typing import Any, Literal

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest
from redis.exceptions import NoScriptError

from panel.kept_redis import kept_like

Mode = Literal["hit", "peek", "record"]

# KEYS[1]: the log, a sorted set of request times (ms) scored by time. ARGV: now (ms),
# period (ms), limit, a unique member for this request, and the mode:
#   hit    count this request if fewer than `limit` are in the window, else refuse it;
#   peek   count nothing, only say whether the window is full;
#   record count this request whatever the window holds (a failed login), keeping the newest
#          `limit` entries.
# Returns 0 when the request passes (or the window has room) else the ms until it has room.
_SLIDING_WINDOW_LUA = """
local now, period, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local mode = ARGV[5]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local n = redis.call('ZCARD', KEYS[1])
if mode == 'record' or (mode == 'hit' and n < limit) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -limit - 1)
  redis.call('PEXPIRE', KEYS[1], period)
  return 0
end
if n < limit then return 0 end
local oldest = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + period - now)
"""

# Several windows in one round trip (rate_limit_hit_all): KEYS are the logs; ARGV: now (ms), the
# unique member, then period (ms) and limit of each key. Each key in turn counts the request
# unless its window is full; the first full one stops there (the keys before it counted it, the
# ones after it did not) and the script returns {its 1-based index, ms until it has room}.
# {0, 0}: every window counted the request.
_SLIDING_WINDOWS_LUA = """
local now, member = tonumber(ARGV[1]), ARGV[2]
for i, key in ipairs(KEYS) do
  local period, limit = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
  local n = redis.call('ZCARD', key)
  if n >= limit then
    local oldest = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    return {i, math.max(1, tonumber(oldest[2]) + period - now)}
  end
  redis.call('ZADD', key, now, member)
  redis.call('ZREMRANGEBYRANK', key, 0, -limit - 1)
  redis.call('PEXPIRE', key, period)
end
return {0, 0}
"""

_local_lock = threading.Lock()


class _Script:
    """A Lua script run by EVALSHA on a connection kept for it (panel.kept_redis: redis-py's
    pooled client cost more CPU than the round trip, on every API call), made as the Redis
    cache's own connections are (writes always go to the first server, whatever the key:
    RedisCacheClient); loaded with SCRIPT LOAD the first time the server does not know it
    (a new or restarted server)."""

    def __init__(self, backend: RedisCache, lua: str) -> None:
        self.lua = lua
        self.sha = hashlib.sha1(lua.encode(), usedforsecurity=False).hexdigest()
        pool = backend._cache.get_client(write=True).connection_pool
        self.connection = kept_like(pool)  # the one the cache's own get uses too

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        try:
            return self.connection.command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.connection.command("SCRIPT", "LOAD", self.lua)
        return self.connection.command("EVALSHA", self.sha, len(keys), *keys, *args)


# The scripts of each Redis cache backend (Django keeps one backend object per thread), made
# once and kept for the process's life. A KeptConnection makes its own connection in a forked
# child, so a script made before gunicorn forks its workers still works in each of them.
_scripts: "weakref.WeakKeyDictionary[RedisCache, dict[str, _Script]]" = weakref.WeakKeyDictionary()


def _script(backend: RedisCache, lua: str) -> _Script:
    registered = _scripts.get(backend)
    if registered is None:
        registered = _scripts.setdefault(backend, {})
    script = registered.get(lua)
    if script is None:
        script = registered.setdefault(lua, _Script(backend, lua))
    return script


def rate_limit_hit(*, key: str, limit: int, period: float) -> int:
    """Count one request of `key` unless `limit` were counted in the last `period` seconds.
    Returns 0 when it passes, else the seconds (at least 1) until one more would pass; a
    refused request is not counted."""
    return _run(key=key, limit=limit, period=period, mode="hit")


def rate_limit_hit_all(checks: list[tuple[str, int, float]]) -> tuple[int, int]:
    """rate_limit_hit for several (key, limit, period) in order, in one round trip with Redis:
    each counts the request until one refuses it (the ones after it count nothing). Returns
    (-1, 0) when every one passed, else (the refusing check's index, seconds until it has
    room, at least 1)."""
    if any(limit < 1 or period <= 0 for _, limit, period in checks):
        raise ValueError("A rate limit needs a positive count and period.")
    backend = caches["default"]
    if not checks:
        return -1, 0
    if not isinstance(backend, RedisCache):
        for index, (key, limit, period) in enumerate(checks):
            retry_after = rate_limit_hit(key=key, limit=limit, period=period)
            if retry_after:
                return index, retry_after
        return -1, 0
    now_ms = int(time.time() * 1000)
    keys = [backend.make_and_validate_key(key) for key, _, _ in checks]
    args: list[int | str] = [now_ms, f"{now_ms}:{secrets.token_hex(6)}"]
    for _, limit, period in checks:
        args += [max(1, int(period * 1000)), limit]
    refused, wait_ms = (
        int(x) for x in _script(backend, _SLIDING_WINDOWS_LUA)(keys=keys, args=args)
    )
    if not refused:
        return -1, 0
    return refused - 1, max(1, math.ceil(wait_ms / 1000))


def rate_limit_wait(*, key: str, limit: int, period: float) -> int:
    """The seconds until `key` has room for one more request (0: it has room now); counts
    nothing."""
    return _run(key=key, limit=limit, period=period, mode="peek")


def rate_limit_record(*, key: str, limit: int, period: float) -> None:
    """Count one event of `key` (a failed login) whether or not its window is full."""
    _run(key=key, limit=limit, period=period, mode="record")


def rate_limit_clear(*, key: str) -> None:
    """Forget every request counted for `key`."""
    caches["default"].delete(key)


def _run(*, key: str, limit: int, period: float, mode: Mode) -> int:
    if limit < 1 or period <= 0:
        return 0
    now_ms = int(time.time() * 1000)  # the wall clock, shared by every web server (NTP)
    period_ms = max(1, int(period * 1000))
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        wait_ms = _run_redis(backend, key, now_ms, period_ms, limit, mode)
    else:
        wait_ms = _run_portable(backend, key, now_ms, period_ms, limit, mode)
    return max(1, math.ceil(wait_ms / 1000)) if wait_ms > 0 else 0


def _run_redis(
    backend: RedisCache, key: str, now_ms: int, period_ms: int, limit: int, mode: Mode
) -> int:
    redis_key = backend.make_and_validate_key(key)
    # The member only has to be unique: two requests in the same millisecond both count.
    member = f"{now_ms}:{secrets.token_hex(6)}"
    script = _script(backend, _SLIDING_WINDOW_LUA)  # EVALSHA, loading it once if needed
    return int(script(keys=[redis_key], args=[now_ms, period_ms, limit, member, mode]))


def _run_portable(
    backend: BaseCache, key: str, now_ms: int, period_ms: int, limit: int, mode: Mode
) -> int:
    with _local_lock:
        stored = backend.get(key)
        times = [t for t in stored if t > now_ms - period_ms] if isinstance(stored, list) else []
        if mode == "record" or (mode == "hit" and len(times) < limit):
            times = [*times, now_ms][-limit:]
            backend.set(key, times, timeout=math.ceil(period_ms / 1000) + 1)
            return 0
    if len(times) < limit:
        return 0
    return max(1, times[len(times) - limit] + period_ms - now_ms)


# --- The client's address ---------------------------------------------------------------------


def client_ip(request: HttpRequest) -> str | None:
    """The address of the client that sent `request`, or None when none can be read.

    Without API_CLIENT_IP_HEADER it is REMOTE_ADDR. Behind a proxy REMOTE_ADDR is the proxy's
    own address (keyed on it, one guesser would lock every customer out), so the setting names
    the header the proxy writes, as Django spells it (HTTP_X_REAL_IP, HTTP_X_FORWARDED_FOR).
    Such a header is a list each proxy appends to, and its left end is whatever the client
    wrote: the address is the one API_TRUSTED_PROXY_COUNT entries from the right (1: the entry
    our own proxy appended). A header missing, shorter than that, or not an address at that
    place gives REMOTE_ADDR."""
    header = getattr(settings, "API_CLIENT_IP_HEADER", None)
    if header:
        trusted = max(1, int(getattr(settings, "API_TRUSTED_PROXY_COUNT", 1) or 1))
        entries = [e.strip() for e in str(request.META.get(header, "")).split(",")]
        entries = [e for e in entries if e]
        if len(entries) >= trusted:
            address = _parse_address(entries[-trusted])
            if address:
                return address
    return _parse_address(str(request.META.get("REMOTE_ADDR") or ""))


# The longest way an address is written ('[' IPv6 with an embedded IPv4 ']:' port): anything
# longer is not one, and is not kept in _parse_address's cache (a header's text can be long).
_ADDRESS_MAX = 64


def _parse_address(raw: str) -> str | None:
    """'203.0.113.7', '203.0.113.7:5123', '2001:db8::1' or '[2001:db8::1]:443' → the address."""
    raw = raw.strip()
    return _parse_short_address(raw) if len(raw) <= _ADDRESS_MAX else None


@functools.lru_cache(maxsize=4096)  # a few thousand clients, each parsed once per process
def _parse_short_address(raw: str) -> str | None:
    raw = raw.strip()
    if raw.startswith("[") and "]" in raw:
        raw = raw[1 : raw.index("]")]
    elif raw.count(":") == 1:
        raw = raw.split(":")[0]
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None
