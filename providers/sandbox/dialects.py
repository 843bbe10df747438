"""Dialects: the sandbox answering like a seed provider that lacks some calls.

The default dialect, ``full``, answers the superset of the seed dialects. ``helposmm`` answers
like seed 000, whose documentation has no multi refill, no multi refill_status and no cancel:
those requests get ``{"error": "Incorrect request"}`` (what an API v2 panel answers to a call
it does not know), and its catalog items carry no ``cancel`` or ``dripfeed`` key.

A refusal rule is ``action`` (the action is refused whatever its fields) or ``action:field``
(refused when that field is sent: ``status:orders`` refuses multi status and keeps the single
form). Extra rules (``--refuse``, or ``refuse`` in ``POST /_sandbox/config``) add to the
dialect's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FULL = "full"
HELPOSMM = "helposmm"

_RULE = re.compile(r"^[a-z_]+(:[a-z_]+)?$")


@dataclass(frozen=True)
class Dialect:
    name: str
    refuses: frozenset[str] = frozenset()
    hidden_service_keys: tuple[str, ...] = ()


DIALECTS: dict[str, Dialect] = {
    FULL: Dialect(FULL),
    HELPOSMM: Dialect(
        HELPOSMM,
        refuses=frozenset({"refill:orders", "refill_status:refills", "cancel"}),
        hidden_service_keys=("cancel", "dripfeed"),
    ),
}


class DialectError(ValueError):
    """An unknown dialect or a malformed refusal rule; the message says why."""


def get_dialect(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise DialectError(f"dialect must be one of: {', '.join(DIALECTS)}") from None


def parse_rules(value: Any) -> frozenset[str]:
    """Refusal rules from a list or a comma-separated string (``refill:orders,cancel``)."""
    if value in (None, ""):
        return frozenset()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple | frozenset | set):
        raise DialectError("refuse must be a list of rules like 'status:orders' or 'cancel'")
    rules = {str(rule).strip() for rule in value if str(rule).strip()}
    if bad := sorted(rule for rule in rules if not _RULE.match(rule)):
        raise DialectError(f"malformed refusal rules: {', '.join(bad)} (action or action:field)")
    return frozenset(rules)


def is_refused(rules: Iterable[str], params: Mapping[str, str]) -> bool:
    """True when a rule refuses this request (its action, or its action with a field sent)."""
    action = params.get("action", "")
    for rule in rules:
        name, _, field = rule.partition(":")
        if name == action and (not field or params.get(field, "").strip()):
            return True
    return False
