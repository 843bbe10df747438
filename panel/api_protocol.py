"""The reseller API v2 protocol: the types every action handler shares with the dispatcher.

A refused request (ApiError), the request's parameters read as the protocol's strings
(ApiParams), one token of an id list (IdItem, parse_id) and the protocol's limits. It imports
no app, so that the handlers (accounts/api.py, catalog/api.py, orders/api.py) import it and the
dispatcher (panel/api_v2.py) imports the handlers without a cycle. It is the only module of
`panel` an app may import.
"""

import gzip
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

MAX_IDS = 100  # every seed document caps multi calls at 100 ids
ID_LIST_PARAMS = frozenset({"orders", "refills", "cancels"})
MAX_ID = 2**63 - 1  # PostgreSQL bigint


@dataclass(frozen=True)
class RenderedJson:
    """An answer a handler rendered (and gzipped) itself, e.g. from a cache: the dispatcher
    sends these bytes as they are, `gzipped` to a client that accepts gzip, else `plain`
    (decompressed when not given)."""

    gzipped: bytes
    plain: bytes | None = None

    def plain_body(self) -> bytes:
        return self.plain if self.plain is not None else gzip.decompress(self.gzipped)


class ApiError(Exception):
    """A refused request; the message is what the client reads in {"error": ...}."""

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def _clean_text(name: str, value: str) -> str:
    # PostgreSQL refuses NUL in text and lone surrogates cannot be encoded: refuse them here
    # with a clear message rather than letting the database raise.
    if "\x00" in value:
        raise ApiError(f'The parameter "{name}" contains a NUL character.')
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(f'The parameter "{name}" is not valid text.') from None
    return value


def _to_string(name: str, value: Any) -> str | None:
    """A JSON value as the protocol's string: numbers and flags as text, a list of ids joined
    with commas, a list of lines (comments, usernames, groups) joined with newlines."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
    ):
        return ("," if name in ID_LIST_PARAMS else "\n").join(str(v) for v in value)
    raise ApiError(f'The parameter "{name}" must be a string or a number.')


class IdItem(NamedTuple):
    """One token of a comma-separated id list: what the client wrote and, if it is a valid id,
    the number. (A tuple: a call reads up to 100 of them, and a frozen dataclass took twice as
    long to make.)"""

    raw: str
    id: int | None

    @property
    def echo(self) -> int | str:
        """The id as the answer shows it: a number, like the documents, when it is one."""
        return self.id if self.id is not None else self.raw


def parse_id(raw: str) -> int | None:
    """The id a token names (a positive bigint written in ASCII digits), or None."""
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit():
        return None
    digits = raw.lstrip("0")  # Python refuses to convert more than 4,300 digits (ValueError)
    if len(digits) > len(str(MAX_ID)):
        return None
    value = int(digits or "0")
    return value if 0 < value <= MAX_ID else None


class ApiParams:
    """The request's parameters. Values are read as strings, as the protocol sends them;
    unknown parameters are simply never asked for."""

    def __init__(
        self, values: Mapping[str, Any], *, headers: Mapping[str, str] | None = None
    ) -> None:
        self._values = values
        self.headers = headers if headers is not None else {}
        self._id_lists: dict[str, list[IdItem]] = {}

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def get(self, name: str) -> str | None:
        """The value, or None when absent or empty."""
        value = _to_string(name, self._values.get(name))
        if value is None or value.strip() == "":
            return None
        return _clean_text(name, value)

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise ApiError(f'Missing parameter "{name}".')
        return value

    def strings(self, names: Iterable[str]) -> dict[str, str]:
        """The named parameters that are present, as strings (for a service's data)."""
        out: dict[str, str] = {}
        for name in names:
            value = self.get(name)
            if value is not None:
                out[name] = value
        return out

    def id_list(self, name: str) -> list[IdItem]:
        """A comma-separated list of ids, up to MAX_IDS, in the client's order, each once.
        Tokens that are not ids are kept (the answer reports them one by one). Read once per
        request: the dispatcher's key lookup and the action's handler both ask for it."""
        items = self._id_lists.get(name)
        if items is None:
            items = self._id_lists[name] = self._read_id_list(name)
        return items

    def _read_id_list(self, name: str) -> list[IdItem]:
        value = self.require(name)
        if _PLAIN_IDS.fullmatch(value):
            # What clients send: ids and commas only, as each id prints (no sign, space or
            # leading zero), so a token is its id's text: 2 µs per id fewer than token by token.
            tokens = list(dict.fromkeys(value.split(",")))
            items = list(map(IdItem._make, zip(tokens, map(int, tokens), strict=True)))
        else:
            seen: dict[str, IdItem] = {}
            for token in value.split(","):
                token = token.strip()
                if token and token not in seen:
                    seen[token] = IdItem(raw=token, id=parse_id(token))
            items = list(seen.values())
        if not items:
            raise ApiError(f'The parameter "{name}" lists no ids.')
        if len(items) > MAX_IDS:
            raise ApiError(
                f'Too many ids in "{name}": at most {MAX_IDS} per call, {len(items)} were sent.'
            )
        return items


# Ids as they print, at most 18 digits (so never above MAX_ID), joined by commas.
_PLAIN_IDS = re.compile(r"[1-9][0-9]{0,17}(?:,[1-9][0-9]{0,17})*")
