"""The web throttles: failed logins per (username, address) and per address (the customer's
login and the admin's), sign-up forms and password-reset requests per address.

A guesser who hammers one account from one address is stopped after LOGIN_THROTTLE_ATTEMPTS
failures within LOGIN_THROTTLE_SECONDS; a second, looser count per address alone stops one
address from walking through many usernames. A successful login clears the (username, address)
count. Everything is counted by the one sliding-window limiter (accounts/ratelimit.py) in the
shared cache, so every web process sees the same counts and no stretch of the window ever lets
more than the limit through. The address is `accounts.ratelimit.client_ip`.
"""

import functools
import hashlib
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.conf import settings

from accounts.ratelimit import (
    rate_limit_clear,
    rate_limit_hit,
    rate_limit_record,
    rate_limit_wait,
)

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def _fail_open(default: R) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """With the cache unreachable, log and let the customer in rather than answer a 500: the
    throttle is a brake on guessing, the password check still stands."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
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


def _keys(username: str, ip: str | None) -> tuple[str, str]:
    ip = ip or "unknown"
    # Hashed so that any username (spaces, unicode, 150 chars) makes a valid cache key.
    pair = hashlib.sha256(f"{username.strip().lower()}\0{ip}".encode()).hexdigest()
    # "throttle:login:", not the old "login-fails:" keys, which held plain counters.
    return f"throttle:login:pair:{pair}", f"throttle:login:ip:{ip}"


@_fail_open(0)
def login_throttle_wait(*, username: str, ip: str | None) -> int:
    """Seconds until this (username, address) may try again; 0 when it may try now."""
    attempts, window, per_ip = _limits()
    pair_key, ip_key = _keys(username, ip)
    return max(
        rate_limit_wait(key=pair_key, limit=attempts, period=window),
        rate_limit_wait(key=ip_key, limit=per_ip, period=window),
    )


@_fail_open(None)
def login_throttle_fail(*, username: str, ip: str | None) -> None:
    """Count one failed attempt for the pair and for the address. Atomic on Redis, so guesses
    sent in parallel all count."""
    attempts, window, per_ip = _limits()
    pair_key, ip_key = _keys(username, ip)
    rate_limit_record(key=pair_key, limit=attempts, period=window)
    rate_limit_record(key=ip_key, limit=per_ip, period=window)


@_fail_open(None)
def login_throttle_clear(*, username: str, ip: str | None) -> None:
    rate_limit_clear(key=_keys(username, ip)[0])


def login_throttle_message(wait: int) -> str:
    """What a throttled login (the customer's or the admin's) tells the person."""
    minutes = (wait + 59) // 60
    return (
        "Too many failed attempts to sign in. For your account's safety, please "
        f"wait {minutes} minute{'s' if minutes != 1 else ''} and try again, or "
        "reset your password."
    )


# --- Sign-up and password reset -----------------------------------------------------------------
# Every sign-up form sent from one address counts, accepted or not: a refused form still costs a
# password hash and tells whether an e-mail is taken.


def address_throttle_hit(*, scope: str, ip: str | None, attempts: int, window: int) -> int:
    """Count one attempt of `scope` from `ip`. Returns 0 while the address has made fewer than
    `attempts` in the last `window` seconds, else the seconds until it may try again (the
    refused attempt is not counted). A limit (or window) of 0 turns the throttle off. If the
    cache is unreachable the attempt goes through (and it is logged) rather than the page
    failing."""
    window = int(window or 0)
    if not attempts or window <= 0:
        return 0
    try:
        return rate_limit_hit(
            key=f"throttle:{scope}:ip:{ip or 'unknown'}", limit=attempts, period=window
        )
    except Exception:
        logger.exception("%s throttle: the cache failed; letting the attempt through", scope)
        return 0


def signup_throttle_hit(*, ip: str | None) -> int:
    """One sign-up form from `ip`: SIGNUP_THROTTLE_ATTEMPTS per SIGNUP_THROTTLE_SECONDS."""
    return address_throttle_hit(
        scope="signup",
        ip=ip,
        attempts=getattr(settings, "SIGNUP_THROTTLE_ATTEMPTS", 10),
        window=getattr(settings, "SIGNUP_THROTTLE_SECONDS", 3600),
    )


def password_reset_throttle_hit(*, ip: str | None) -> int:
    """One password-reset request from `ip` (each may send an e-mail to a customer's inbox):
    PASSWORD_RESET_THROTTLE_ATTEMPTS per PASSWORD_RESET_THROTTLE_SECONDS."""
    return address_throttle_hit(
        scope="password-reset",
        ip=ip,
        attempts=getattr(settings, "PASSWORD_RESET_THROTTLE_ATTEMPTS", 5),
        window=getattr(settings, "PASSWORD_RESET_THROTTLE_SECONDS", 3600),
    )
