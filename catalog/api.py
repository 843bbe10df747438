"""The reseller API's `services` action (dispatched by panel/api_v2.py)."""

import gzip
from decimal import Decimal
from typing import Any

from rest_framework.renderers import JSONRenderer

from accounts.models import User
from accounts.selectors import KeyExtra
from catalog.price_lists import (
    catalog_version,
    local_answers,
    price_list_get,
    price_list_key,
    price_list_put,
)
from catalog.pricing import convert_rate
from catalog.selectors import (
    customer_price_list_terms,
    price_list_terms_key_extra,
    service_list_enabled,
    service_rates_for_user_by_id,
)
from panel.api_protocol import ApiParams, RenderedJson


def format_rate(rate: Decimal) -> str:
    """A rate per 1000 as the documents write it: at least 2 places, no trailing zeros beyond
    them, never in exponent form ("0.90", "8.00", "0.0035")."""
    text = f"{rate:f}"
    if "." not in text:
        return text + ".00"
    whole, frac = text.split(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{whole}.{frac}"


FIELDS = (
    "id",
    "name",
    "type",
    "category__name",
    "min",
    "max",
    "refill",
    "cancel",
    "dripfeed",
    "description",
    "rate",
    "upstream__rate",
    "upstream__provider__exchange_rate",
)


def services_key_extra(params: ApiParams) -> KeyExtra | None:
    """What `services` has the API key lookup read in the same statement: the customer's price
    terms and custom rates (PostgreSQL), which customer_price_list_terms then finds read."""
    return price_list_terms_key_extra()


def services(*, user: User, params: ApiParams) -> RenderedJson:
    """Every enabled service with this customer's rate, the panel's own ids: from the cache of
    price lists (catalog.price_lists) when the catalog and the customer's terms are those it
    was built with, else built and cached. One query on a hit (the terms, on PostgreSQL), two
    on a miss."""
    version = catalog_version()  # before any row is read: see catalog.price_lists
    # Read with the key (services_key_extra), else one query on PostgreSQL.
    terms, custom = customer_price_list_terms(user=user)
    key = price_list_key(version, terms, custom) if version is not None else None
    cached = price_list_get(key) if key is not None else None
    if cached is not None:
        gzipped, plain = cached
        if plain is None and "gzip" not in params.headers.get("Accept-Encoding", ""):
            # A client without gzip: decompress once per process, not on every call.
            plain = gzip.decompress(gzipped)
            local_answers.put(key, gzipped, plain)  # type: ignore[arg-type]  # key is set
        return RenderedJson(gzipped, plain)
    plain = JSONRenderer().render(_price_list(user, custom))
    gzipped = gzip.compress(plain, compresslevel=6, mtime=0)
    if key is not None:
        price_list_put(key, gzipped, plain)
    return RenderedJson(gzipped, plain)


def _price_list(user: User, custom: dict[int, Decimal]) -> list[dict[str, Any]]:
    """The answer's rows: the services on sale, at this customer's rates."""
    # Plain rows, not model instances: with 5,000 services building models (even stubs holding
    # just id and rate for the pricing selector) took half of the call.
    rows = list(service_list_enabled().values_list(*FIELDS))
    upstream = {row[0]: (row[-2], row[-1]) for row in rows}

    def cost_of(pk: int) -> Decimal | None:  # asked only when a tier's discount stops at cost
        rate, exchange_rate = upstream[pk]
        return None if rate is None else convert_rate(rate, exchange_rate)

    rates = service_rates_for_user_by_id(
        user=user, retail={row[0]: row[10] for row in rows}, cost_of=cost_of, custom=custom
    )
    return [
        {
            "service": pk,
            "name": name,
            "type": type_,
            "category": category,
            "rate": format_rate(rates[pk]),
            "min": str(low),
            "max": str(high),
            "refill": refill,
            "cancel": cancel,
            "dripfeed": dripfeed,
            "desc": desc,
        }
        for pk, name, type_, category, low, high, refill, cancel, dripfeed, desc, *_ in rows
    ]
