"""Rate-limit specs such as "60/10s": parsed here, without Django, so that the settings can
refuse a malformed one at start instead of the API failing on every call."""

import functools
import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LIMIT_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])[a-z]*\s*$", re.IGNORECASE)


@functools.lru_cache(maxsize=32)
def parse_rate_limit(spec: str | None) -> tuple[int, int] | None:
    """ "60/10s" → (60, 10): at most 60 calls per 10-second window. None or "" → no limit."""
    if not spec:
        return None
    match = _LIMIT_RE.match(spec)
    if not match:
        raise ValueError(f"A rate limit looks like '60/10s' or '1000/h', not {spec!r}.")
    count, amount, unit = int(match[1]), int(match[2] or 1), match[3].lower()
    if count < 1 or amount < 1:
        raise ValueError(f"A rate limit needs a positive count and period, not {spec!r}.")
    return count, amount * _UNITS[unit]


def _per(count: int, seconds: int, scope: str) -> str:
    return f"{count}/{seconds}s/{scope}" if count > 0 and seconds > 0 else ""


def account_rate_limits(
    *, login: tuple[int, int, int], signup: tuple[int, int], reset: tuple[int, int]
) -> dict[str, str]:
    """allauth's ACCOUNT_RATE_LIMITS from the panel's throttle settings: `login` is (failures
    per login name and address, failures per address, window seconds), `signup` and `reset` are
    (requests per address, window seconds). A count or window of 0 turns that limit off. The
    limits not named keep allauth's defaults."""
    per_key, per_ip, window = login
    failed = ",".join(
        part for part in (_per(per_ip, window, "ip"), _per(per_key, window, "key")) if part
    )
    return {
        "login_failed": failed,
        "signup": _per(signup[0], signup[1], "ip"),
        # Each request may mail a customer: per address, and per target address too.
        "reset_password": ",".join(
            part
            for part in (_per(reset[0], reset[1], "ip"), _per(reset[0], reset[1], "key"))
            if part
        ),
    }
