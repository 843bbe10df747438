"""The reseller API's `services` answer, built once per price list, kept gzipped in the cache.

With 5,000 services the answer is 1.3 MB of JSON (40 kB gzipped) and building it (reading the
rows, pricing each, rendering, gzipping) took 100+ ms; resellers ask for it many times a day and
it rarely changes. Its cache key names everything the answer is made of, so that an entry is
never read after what it was made of changed:

- the catalog's version: a random token in the shared cache, replaced whenever a row the answer
  reads is written: a Service or a Category (any field), an UpstreamService's rate or a
  Provider's exchange rate (the costs a tier's discount stops at). Model.save() and delete()
  are caught by post_save / post_delete, queryset update() and the bulk writes by
  providers.models.rows_written. The token is replaced at once and again after the transaction
  commits: an answer built from the rows before the commit may be stored under the token of
  the first replacement, never under the one that follows the commit. The API reads the
  version before it reads any row.
- the customer's price terms, read from the database on every call (catalog.selectors: their
  own discount and tier, and their custom rates): a new discount, a new tier (Wallet.total_spent
  moving across a threshold, or staff editing the tiers) or a changed custom rate makes another
  key at once, with nothing to invalidate. Customers with the same terms share one entry.

Entries also expire after ANSWER_TIMEOUT, a net for a version replacement lost to a cache
outage. With the cache down the answer is built on every call (and the outage logged).
Each web process also keeps the newest entries in memory (the key already names the version,
so they are exact too): a hit then costs one small cache read, the version.
"""

import hashlib
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Model
from django.db.models.signals import post_delete, post_save

from catalog.models import Category, Service, UpstreamService
from catalog.pricing import CustomerPricing
from providers.models import Provider, rows_written

logger = logging.getLogger(__name__)

VERSION_KEY = "catalog:price-list-version"
ANSWER_TIMEOUT = 600  # seconds
ANSWER_FORMAT = "1"  # bump when the answer's shape changes: old entries are then never read
LOCAL_MAX_BYTES = 8 * 1024 * 1024  # per process, gzipped answers and their plain forms

# The fields of each model the answer reads (None: any field).
WATCHED: dict[type[Model], frozenset[str] | None] = {
    Service: None,
    Category: None,
    UpstreamService: frozenset({"rate"}),
    Provider: frozenset({"exchange_rate"}),
}


# --- The catalog's version ---------------------------------------------------------------------


def catalog_version() -> str | None:
    """The catalog's current version, or None when the cache cannot be read (then nothing is
    cached)."""
    try:
        version = cache.get(VERSION_KEY)
        if version is None:
            cache.add(VERSION_KEY, secrets.token_hex(8), timeout=None)
            version = cache.get(VERSION_KEY)
    except Exception:
        logger.exception("price lists: the cache could not be read; building the answer")
        return None
    return str(version) if version is not None else None


def catalog_changed() -> None:
    """A row the answer reads was written: replace the version now and after commit."""
    _replace_version()
    transaction.on_commit(_replace_version)


def _replace_version() -> None:
    try:
        cache.set(VERSION_KEY, secrets.token_hex(8), timeout=None)
    except Exception:  # the entries still expire after ANSWER_TIMEOUT
        logger.exception("price lists: the catalog's version could not be replaced")


def _touches_answer(model: type[Model], fields: frozenset[str] | None) -> bool:
    watched = WATCHED[model]
    return watched is None or fields is None or bool(watched & fields)


def _on_save(sender: type[Model], update_fields: frozenset[str] | None = None, **_: Any) -> None:
    if _touches_answer(sender, frozenset(update_fields) if update_fields else None):
        catalog_changed()


def _on_delete(sender: type[Model], **_: Any) -> None:
    catalog_changed()


def _on_rows_written(sender: type[Model], fields: frozenset[str] | None, **_: Any) -> None:
    if sender in WATCHED and _touches_answer(sender, fields):
        catalog_changed()


def connect_signals() -> None:
    """Called once by the catalog's AppConfig.ready()."""
    for model in WATCHED:
        post_save.connect(_on_save, sender=model, dispatch_uid=f"price-lists-save-{model}")
        post_delete.connect(_on_delete, sender=model, dispatch_uid=f"price-lists-del-{model}")
    rows_written.connect(_on_rows_written, dispatch_uid="price-lists-rows")


# --- The answers -------------------------------------------------------------------------------


def price_list_key(version: str, terms: CustomerPricing, custom: Mapping[int, Decimal]) -> str:
    """The cache key of the answer for a catalog version and a customer's price terms."""
    rates = ",".join(f"{pk}={custom[pk]}" for pk in sorted(custom))
    terms_text = f"{terms.own_percent}|{terms.tier_percent}|{int(terms.tier_below_cost)}|{rates}"
    digest = hashlib.sha256(terms_text.encode()).hexdigest()[:32]
    return f"catalog:price-list:{ANSWER_FORMAT}:{version}:{digest}"


class _Local:
    """The newest answers of this process: key → (gzipped, plain or None), at most
    LOCAL_MAX_BYTES in all."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[bytes, bytes | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bytes, bytes | None] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: str, gzipped: bytes, plain: bytes | None) -> None:
        with self._lock:
            self._entries[key] = (gzipped, plain)
            self._entries.move_to_end(key)
            while len(self._entries) > 1 and self._size() > LOCAL_MAX_BYTES:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _size(self) -> int:
        return sum(len(g) + len(p or b"") for g, p in self._entries.values())


local_answers = _Local()


def price_list_get(key: str) -> tuple[bytes, bytes | None] | None:
    """The cached answer (gzipped, and plain when this process has it), or None."""
    entry = local_answers.get(key)
    if entry is not None:
        return entry
    try:
        gzipped = cache.get(key)
    except Exception:
        logger.exception("price lists: the cache could not be read")
        return None
    if not isinstance(gzipped, bytes):
        return None
    local_answers.put(key, gzipped, None)
    return gzipped, None


def price_list_put(key: str, gzipped: bytes, plain: bytes) -> None:
    local_answers.put(key, gzipped, plain)
    try:
        cache.set(key, gzipped, timeout=ANSWER_TIMEOUT)
    except Exception:
        logger.exception("price lists: the answer could not be cached")


def price_list_remember_plain(key: str, gzipped: bytes, plain: bytes) -> None:
    """Keep the plain form of a cached answer in this process (a client without gzip)."""
    local_answers.put(key, gzipped, plain)
