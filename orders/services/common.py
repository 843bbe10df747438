"""What every orders service shares: the error customers see and small helpers."""

import logging
import re
import time
from dataclasses import dataclass, field

from django.conf import settings

logger = logging.getLogger("orders")

_ID = re.compile(r"^[0-9]{1,18}$")


def parse_id(text: str) -> int | None:
    """An id typed or sent by a customer, or None: ASCII digits only (str.isdigit() takes
    "²"), and short enough for a bigint column."""
    text = text.strip().lstrip("#")
    return int(text) if _ID.match(text) else None


class OrderError(Exception):
    """Bad input or a refused action; nothing was written or charged.

    `field` is the API parameter / form field at fault ("link", "quantity", ...), None when the
    problem is not one field's; `message` is a sentence for the customer.
    """

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __repr__(self) -> str:
        return f"OrderError(field={self.field!r}, message={self.message!r})"


class OrderConflict(Exception):
    """The order was not in the status the caller expected: someone else moved it first."""


def sweep_budget_seconds() -> float:
    """How long one provider sweep may keep starting upstream calls: half of Celery's soft time
    limit, so that it stops (having written what it did) well before the limit kills it."""
    return float(getattr(settings, "CELERY_TASK_SOFT_TIME_LIMIT", 120)) / 2


@dataclass(frozen=True)
class Deadline:
    """When a sweep stops starting upstream calls. What it did not reach stays due, so the next
    sweep starts there: a slow provider (one call per id when it has no list form) is worked
    through over several sweeps instead of one sweep being killed mid-way, over and over, before
    it writes anything."""

    at: float = field(default_factory=lambda: time.monotonic() + sweep_budget_seconds())

    def passed(self) -> bool:
        return time.monotonic() >= self.at
