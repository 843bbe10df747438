"""What every orders service shares: the error customers see and small helpers."""

import logging
import re

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
