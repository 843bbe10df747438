"""What every orders service shares: the error customers see and small helpers."""

import logging

logger = logging.getLogger("orders")


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
