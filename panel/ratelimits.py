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
