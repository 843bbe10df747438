"""Login throttling: failed attempts counted in the shared cache per (username, IP); and
sign-up throttling per IP (at the end).

A guesser who hammers one account from one address is stopped after LOGIN_THROTTLE_ATTEMPTS
failures for LOGIN_THROTTLE_SECONDS; a second, looser counter per IP alone stops one address
from walking through many usernames. The cache is Redis (or files) so every web process sees
the same counts. A successful login clears the (username, IP) counter.
"""

import functools
import hashlib
import logging
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


def _fail_open(default):
    """With the cache unreachable, log and let the customer in rather than answer a 500: the
    throttle is a brake on guessing, the password check still stands."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except Exception:
                logger.exception("login throttle: the cache failed; letting the attempt through")
                return default

        return wrapper

    return decorate


def _limits() -> tuple[int, int, int]:
    attempts = getattr(settings, "LOGIN_THROTTLE_ATTEMPTS", 5)
    window = getattr(settings, "LOGIN_THROTTLE_SECONDS", 900)
    per_ip = getattr(settings, "LOGIN_THROTTLE_IP_ATTEMPTS", 50)
    return attempts, window, per_ip


def _keys(username: str, ip: str) -> tuple[str, str]:
    # Hashed so that any username (spaces, unicode, 150 chars) makes a valid cache key.
    pair = hashlib.sha256(f"{username.strip().lower()}\0{ip}".encode()).hexdigest()
    # "login-fails:", not the old "login-fail:" whose values were (count, start) tuples.
    return f"login-fails:pair:{pair}", f"login-fails:ip:{ip}"


@_fail_open(0)
def login_throttle_wait(*, username: str, ip: str) -> int:
    """Seconds until this (username, IP) may try again; 0 when it may try now."""
    attempts, window, per_ip = _limits()
    pair_key, ip_key = _keys(username, ip)
    values = cache.get_many([pair_key, ip_key, f"{pair_key}:start", f"{ip_key}:start"])
    waits = []
    for key, limit in ((pair_key, attempts), (ip_key, per_ip)):
        count = values.get(key)
        if isinstance(count, int) and count >= limit:
            started = values.get(f"{key}:start") or time.time()
            waits.append(max(1, int(started + window - time.time())))
    return max(waits, default=0)


@_fail_open(None)
def login_throttle_fail(*, username: str, ip: str) -> None:
    """Count one failed attempt; the window starts at the first failure.

    The count is the cache's atomic increment (Redis INCR), not a read and a write: with a
    read-then-write, guesses sent in parallel all read the same count and most of them were
    never counted, so a guesser with many connections got far more than the limit."""
    _, window, _ = _limits()
    now = time.time()
    for key in _keys(username, ip):
        cache.add(f"{key}:start", now, timeout=window)
        started = cache.get(f"{key}:start") or now
        remaining = max(1, int(started + window - now))
        cache.add(key, 0, timeout=remaining)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=remaining)
        # Some backends' incr (files, database) write the value back with the default timeout.
        cache.touch(key, timeout=remaining)


@_fail_open(None)
def login_throttle_clear(*, username: str, ip: str) -> None:
    pair_key = _keys(username, ip)[0]
    cache.delete_many([pair_key, f"{pair_key}:start"])


# --- Sign-up ----------------------------------------------------------------------------------
# Every sign-up form sent from one address counts, accepted or not: a refused form still costs a
# password hash and tells whether an e-mail is taken. Counted in fixed windows with the cache's
# increment (atomic in Redis), so bots posting in parallel cannot slip past the limit together.


def address_throttle_hit(*, scope: str, ip: str, attempts: int, window: int) -> int:
    """Count one attempt of `scope` from `ip`. Returns 0 while the address is within `attempts`
    per `window` seconds, else the seconds until its window ends. A limit (or window) of 0
    turns the throttle off. If the cache is unreachable the attempt goes through (and it is
    logged) rather than the page failing."""
    window = int(window or 0)
    if not attempts or window <= 0:
        return 0
    now = time.time()
    index = int(now // window)
    key = f"{scope}:ip:{ip}:{index}"
    try:
        cache.add(key, 0, timeout=window + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window + 1)
            count = 1
    except Exception:
        logger.exception("%s throttle: the cache failed; letting the attempt through", scope)
        return 0
    if count <= attempts:
        return 0
    return max(1, int((index + 1) * window - now))


def signup_throttle_hit(*, ip: str) -> int:
    """One sign-up form from `ip`: SIGNUP_THROTTLE_ATTEMPTS per SIGNUP_THROTTLE_SECONDS."""
    return address_throttle_hit(
        scope="signup",
        ip=ip,
        attempts=getattr(settings, "SIGNUP_THROTTLE_ATTEMPTS", 10),
        window=getattr(settings, "SIGNUP_THROTTLE_SECONDS", 3600),
    )


def password_reset_throttle_hit(*, ip: str) -> int:
    """One password-reset request from `ip` (each may send an e-mail to a customer's inbox):
    PASSWORD_RESET_THROTTLE_ATTEMPTS per PASSWORD_RESET_THROTTLE_SECONDS."""
    return address_throttle_hit(
        scope="password-reset",
        ip=ip,
        attempts=getattr(settings, "PASSWORD_RESET_THROTTLE_ATTEMPTS", 5),
        window=getattr(settings, "PASSWORD_RESET_THROTTLE_SECONDS", 3600),
    )
