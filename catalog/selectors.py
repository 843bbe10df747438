"""Reads for the catalog: services as customers see them, with their own prices."""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from django.core.cache import cache
from django.db import connection, connections
from django.db.models import Count, Field, Min, Model, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from accounts.models import Tier, User, Wallet
from accounts.selectors import KeyExtra
from accounts.sql import ModelColumns, PerDatabase, prepared
from accounts.tiers import (
    price_terms_memo,
    price_terms_remember,
    tier_annotations,
    total_spent_expression,
)
from catalog.models import (
    Category,
    CustomerDiscount,
    CustomerRate,
    FavouriteService,
    Service,
    ServiceBackup,
    UpstreamService,
)
from catalog.order_types import TYPE_SPECS, QuantityFrom
from catalog.pricing import ZERO, CustomerPricing, convert_rate
from providers.models import Provider


def service_list_enabled() -> QuerySet[Service]:
    """Services on sale, with what listing them needs already joined."""
    return (
        Service.objects.filter(is_enabled=True, category__is_enabled=True)
        .select_related("category", "upstream", "upstream__provider")
        .order_by("category__sort_order", "category__name", "sort_order", "id")
    )


# The home page's showcase: a few categories, read once a minute at most (the page is public).
SHOWCASE_CATEGORIES = 8
SHOWCASE_CACHE_KEY = "catalog:showcase:v1"
SHOWCASE_CACHE_SECONDS = 60
# Types priced per package, not per 1000: left out of a category's "from ... per 1000".
PER_PACKAGE_TYPES = [
    t.value for t, spec in TYPE_SPECS.items() if spec.quantity_from == QuantityFrom.PACKAGE
]


@dataclass(frozen=True)
class CategoryShowcase:
    """A category on sale as the home page shows it: its services on sale and the lowest
    retail rate per 1000 among them (None when all are priced per package)."""

    name: str
    service_count: int
    lowest_rate: Decimal | None


def category_showcase(*, limit: int = SHOWCASE_CATEGORIES) -> list[CategoryShowcase]:
    """The first `limit` categories on sale, in the catalog's order, with their lowest retail
    rates: one query, cached for a minute (retail rates: a visitor has no discount)."""
    cached = cache.get(SHOWCASE_CACHE_KEY)
    if cached is not None:
        return cached
    on_sale = Q(services__is_enabled=True)
    rows = (
        Category.objects.filter(is_enabled=True)
        .annotate(
            service_count=Count("services", filter=on_sale),
            lowest_rate=Min(
                "services__rate", filter=on_sale & ~Q(services__type__in=PER_PACKAGE_TYPES)
            ),
        )
        .filter(service_count__gt=0)
        .order_by("sort_order", "name")
        .values_list("name", "service_count", "lowest_rate")[:limit]
    )
    showcase = [CategoryShowcase(*row) for row in rows]
    cache.set(SHOWCASE_CACHE_KEY, showcase, SHOWCASE_CACHE_SECONDS)
    return showcase


def service_get_enabled(*, service_id: int) -> Service | None:
    return service_list_enabled().filter(pk=service_id).first()


# A service read with a customer's custom rate for it (service_get_enabled_for_user): (the
# customer's id, the custom rate or None), so that pricing it asks nothing more.
_CUSTOM_RATE_MEMO = "_panel_custom_rate"


def service_get_enabled_for_user(*, service_id: int, user: User) -> Service | None:
    """service_get_enabled, with everything this customer's price for it needs read in the same
    query: their custom rate for it, their own discount and their tier (remembered on `user`
    as customer_price_terms does, and on the service), so that service_rate_for_user then
    costs no query. For the API's `add`: on PostgreSQL the query is written out
    (_ServiceForUser), elsewhere the ORM builds it."""
    if connection.vendor == "postgresql":
        found = _ServiceForUser.get(connection.alias).fetch(service_id=service_id, user_id=user.pk)
    else:
        found = _service_for_user_orm(service_id=service_id, user=user)
    if found is None:
        return None
    service, customer_rate, terms = found
    price_terms_remember(user, terms)
    setattr(service, _CUSTOM_RATE_MEMO, (user.pk, customer_rate))
    return service


ServiceForUser = tuple[Service, Decimal | None, CustomerPricing]


def _pricing(own: Decimal | None, tier: Decimal | None, below_cost: bool | None) -> CustomerPricing:
    return CustomerPricing(
        own_percent=own or Decimal(0),
        tier_percent=tier or Decimal(0),
        tier_below_cost=bool(below_cost),
    )


def _service_for_user_orm(*, service_id: int, user: User) -> ServiceForUser | None:
    spent = Coalesce(
        Subquery(Wallet.objects.filter(user=user.pk).values("total_spent")[:1]), Value(ZERO)
    )
    custom = CustomerRate.objects.filter(user=user.pk, service=OuterRef("pk")).values("rate")
    own = CustomerDiscount.objects.filter(user=user.pk).values("percent")
    service = (
        service_list_enabled()
        .filter(pk=service_id)
        .annotate(
            customer_rate=Subquery(custom[:1]),
            own_percent=Subquery(own[:1]),
            **tier_annotations(spent=spent),
        )
        .first()
    )
    if service is None:
        return None
    # The tier's two annotations come from a dict (tier_annotations): mypy cannot see them.
    terms = _pricing(
        service.own_percent,
        service.tier_percent,  # type: ignore[attr-defined]
        service.tier_below_cost,  # type: ignore[attr-defined]
    )
    return service, service.customer_rate, terms


class _ServiceForUser(PerDatabase):
    """_service_for_user_orm's query written out once per database from the models' metadata
    (PostgreSQL: the tier is a LATERAL join): the service on sale with its category, upstream
    service and provider (service_list_enabled's select_related), the customer's custom rate for
    it, their own discount and their tier, the rules of _price_terms_read. The ORM spent about
    3 ms of CPU building and compiling that query (five subqueries) on every `add`, more than
    the rest of the call (docs/api.md, Performance); tests/catalog/test_service_for_user_sql.py
    checks that both agree."""

    def __init__(self, alias: str) -> None:
        q = connections[alias].ops.quote_name

        def table(model: type[Model]) -> str:
            return q(model._meta.db_table)

        def col(model: type[Model], name: str) -> str:
            return q(cast(str, cast(Field, model._meta.get_field(name)).column))  # concrete

        self.parts = [
            ModelColumns(Service, "s", alias),
            ModelColumns(Category, "c", alias),
            ModelColumns(UpstreamService, "up", alias),
            ModelColumns(Provider, "p", alias),
        ]
        s_id = f"s.{col(Service, 'id')}"
        # Only the models' own table and column names, quoted; the ids are parameters.
        self.sql = prepared(
            f"SELECT {', '.join(part.sql for part in self.parts)},"  # noqa: S608
            f" (SELECT r.{col(CustomerRate, 'rate')} FROM {table(CustomerRate)} r"
            f" WHERE r.{col(CustomerRate, 'user')} = %(user)s"
            f" AND r.{col(CustomerRate, 'service')} = {s_id} LIMIT 1),"
            f" (SELECT d.{col(CustomerDiscount, 'percent')} FROM {table(CustomerDiscount)} d"
            f" WHERE d.{col(CustomerDiscount, 'user')} = %(user)s LIMIT 1),"
            f" t.{col(Tier, 'discount_percent')}, t.{col(Tier, 'allow_below_cost')}"
            f" FROM {table(Service)} s"
            f" INNER JOIN {table(Category)} c ON c.{col(Category, 'id')} = s.{col(Service, 'category')}"
            f" LEFT OUTER JOIN {table(UpstreamService)} up"
            f" ON up.{col(UpstreamService, 'id')} = s.{col(Service, 'upstream')}"
            f" LEFT OUTER JOIN {table(Provider)} p"
            f" ON p.{col(Provider, 'id')} = up.{col(UpstreamService, 'provider')}"
            f" LEFT JOIN LATERAL (SELECT * FROM {table(Tier)} tr"
            f" WHERE tr.{col(Tier, 'min_spent')} <= COALESCE((SELECT w.{col(Wallet, 'total_spent')}"
            f" FROM {table(Wallet)} w WHERE w.{col(Wallet, 'user')} = %(user)s LIMIT 1), 0)"
            f" ORDER BY tr.{col(Tier, 'min_spent')} DESC LIMIT 1) t ON true"
            f" WHERE {s_id} = %(service)s AND s.{col(Service, 'is_enabled')}"
            f" AND c.{col(Category, 'is_enabled')}"
        )
        self.category = Service._meta.get_field("category")
        self.upstream = Service._meta.get_field("upstream")
        self.provider = UpstreamService._meta.get_field("provider")

    def fetch(self, *, service_id: int, user_id: int) -> ServiceForUser | None:
        with connections[self.parts[0].using].cursor() as cursor:
            cursor.execute(self.sql, {"user": user_id, "service": service_id})
            row = cursor.fetchone()
        if row is None:
            return None
        values, start = [], 0
        for part in self.parts:
            values.append(row[start : start + len(part)])
            start += len(part)
        service_part, category_part, upstream_part, provider_part = self.parts
        service: Service = service_part.build(values[0])
        self.category.set_cached_value(service, category_part.build(values[1]))
        upstream = None
        if values[2][0] is not None:  # a manual service's upstream columns are all NULL
            upstream = upstream_part.build(values[2])
            self.provider.set_cached_value(upstream, provider_part.build(values[3]))
        self.upstream.set_cached_value(service, upstream)
        customer_rate, own, tier, below_cost = row[start:]
        return service, customer_rate, _pricing(own, tier, below_cost)


def _remembered_custom_rates(user: User, services: list[Service]) -> dict[int, Decimal] | None:
    """The custom rates read with `services` for `user`, or None unless every one has it."""
    custom: dict[int, Decimal] = {}
    for s in services:
        memo = getattr(s, _CUSTOM_RATE_MEMO, None)
        if memo is None or memo[0] != user.pk:
            return None
        if memo[1] is not None:
            custom[s.pk] = memo[1]
    return custom


def service_favourite_ids(*, user: User) -> set[int]:
    """The ids of the services `user` starred, in one query."""
    return set(FavouriteService.objects.filter(user=user).values_list("service_id", flat=True))


def service_list_favourites(*, user: User, services: QuerySet[Service]) -> QuerySet[Service]:
    """`services` narrowed to the ones `user` starred."""
    return services.filter(pk__in=FavouriteService.objects.filter(user=user).values("service_id"))


# Above this many services the custom rates are read by customer alone: a customer has a few
# custom rates, and a 5,000-id IN list cost 60-110 ms to send and plan (docs/api.md, Performance).
RATES_BY_ID_MAX = 100


def customer_price_terms(*, user: User) -> CustomerPricing:
    """The customer's own discount and tier, in one query (the tier from the total spent cached
    on the wallet, docs/growth.md), once per request: memoised on `user` (accounts.tiers)."""
    memo = price_terms_memo(user)
    if isinstance(memo, CustomerPricing):
        return memo
    terms = _price_terms_read(user)
    price_terms_remember(user, terms)
    return terms


def _price_terms_read(user: User) -> CustomerPricing:
    own = CustomerDiscount.objects.filter(user=OuterRef("pk")).values("percent")[:1]
    row = (
        User.objects.filter(pk=user.pk)
        .annotate(spent=total_spent_expression())
        .annotate(own=Subquery(own), **tier_annotations(spent=OuterRef("spent")))
        .values_list("own", "tier_percent", "tier_below_cost")
        .first()
    )
    if row is None:
        return CustomerPricing()
    own_percent, tier_percent, below_cost = row
    return CustomerPricing(
        own_percent=own_percent or Decimal(0),
        tier_percent=tier_percent or Decimal(0),
        tier_below_cost=bool(below_cost),
    )


def customer_custom_rates(*, user: User) -> dict[int, Decimal]:
    """Every custom rate of the customer, by service id, in one query (a customer has a few)."""
    return dict(CustomerRate.objects.filter(user=user).values_list("service_id", "rate"))


PriceListTerms = tuple[CustomerPricing, dict[int, Decimal]]
# The terms read with the API key (PRICE_LIST_TERMS_WITH_KEY), on that request's User object.
_PRICE_LIST_MEMO = "_panel_price_list_terms"


def customer_price_list_terms(*, user: User) -> PriceListTerms:
    """customer_price_terms and customer_custom_rates together, for the API's `services` (which
    reads them on every call): read with the API key when the dispatcher asked for them
    (PRICE_LIST_TERMS_WITH_KEY), else on PostgreSQL in one query (the custom rates as two arrays
    read in the same snapshot), elsewhere in two. The terms are remembered on `user` as
    customer_price_terms does."""
    memo = getattr(user, _PRICE_LIST_MEMO, None)
    # A write that forgets the remembered terms (accounts.services: the tier may have moved)
    # makes the memo stale too.
    if memo is not None and price_terms_memo(user) is memo[0]:
        return memo
    if connection.vendor != "postgresql":
        return customer_price_terms(user=user), customer_custom_rates(user=user)
    with connection.cursor() as cursor:
        cursor.execute(PRICE_LIST_TERMS_SQL, [user.pk])
        row = cursor.fetchone()
    if row is None:
        return CustomerPricing(), {}
    return _price_list_terms(user, row)


def _price_list_terms(user: User, row: tuple[Any, ...]) -> PriceListTerms:
    own_percent, tier_percent, below_cost, ids, rates = row
    terms = CustomerPricing(
        own_percent=own_percent or Decimal(0),
        tier_percent=tier_percent or Decimal(0),
        tier_below_cost=bool(below_cost),
    )
    price_terms_remember(user, terms)
    service_ids: list[int] = list(ids or [])
    custom_rates: list[Decimal] = list(rates or [])
    return terms, dict(zip(service_ids, custom_rates, strict=True))


def _receive_price_list_terms(user: User, values: tuple[Any, ...]) -> None:
    setattr(user, _PRICE_LIST_MEMO, _price_list_terms(user, values))


# customer_price_list_terms' columns, written out over a user `u` and their wallet `w`: the rule
# is _price_terms_read's (the own discount; the tier with the highest threshold at or below the
# total spent, accounts.tiers) and customer_custom_rates'. Written as SQL because the ORM took
# about 2.7 ms of CPU to build it (five subqueries) on every call, most of what a cached
# `services` call cost (docs/api.md, Performance); tests/catalog/test_price_terms_sql.py checks
# that both agree, read alone or with the key.
_TIER_REACHED = (
    "FROM accounts_tier WHERE min_spent <= COALESCE(w.total_spent, 0) "
    "ORDER BY min_spent DESC LIMIT 1"
)
PRICE_LIST_TERMS_COLUMNS = (
    "(SELECT d.percent FROM catalog_customerdiscount d WHERE d.user_id = u.id LIMIT 1)",
    f"(SELECT discount_percent {_TIER_REACHED})",
    f"(SELECT allow_below_cost {_TIER_REACHED})",
    "ARRAY(SELECT r.service_id FROM catalog_customerrate r"
    " WHERE r.user_id = u.id ORDER BY r.service_id)",
    "ARRAY(SELECT r.rate FROM catalog_customerrate r WHERE r.user_id = u.id ORDER BY r.service_id)",
)
PRICE_LIST_TERMS_SQL = (
    f"SELECT {', '.join(PRICE_LIST_TERMS_COLUMNS)} FROM accounts_user u"  # noqa: S608 - constants
    " LEFT JOIN accounts_wallet w ON w.user_id = u.id WHERE u.id = %s"
)
# The same columns read by the API key lookup (accounts.selectors.api_key_get_user), for
# `services`: one statement fewer on each of its calls. PostgreSQL only (ARRAY).
PRICE_LIST_TERMS_WITH_KEY = KeyExtra(
    columns=PRICE_LIST_TERMS_COLUMNS, receive=_receive_price_list_terms
)


def price_list_terms_key_extra() -> KeyExtra | None:
    """What the API's dispatcher asks the key lookup to read for `services` (None elsewhere than
    on PostgreSQL: customer_price_list_terms then reads them itself)."""
    return PRICE_LIST_TERMS_WITH_KEY if connection.vendor == "postgresql" else None


def service_rates_for_user(*, user: User, services: list[Service]) -> dict[int, Decimal]:
    """This customer's rate per 1000 for each service, in two queries whatever the count: a
    custom rate wins, else the better of the customer's discount and their tier's applies to
    the retail rate (the tier's never below the cost: the services' upstreams are read from the
    rows when joined, else in one more query)."""
    costs: dict[int, Decimal | None] = {}

    def cost_of(pk: int) -> Decimal | None:
        if not costs:  # read once, on the first service that needs it
            costs.update(_service_costs(services))
        return costs[pk]

    return service_rates_for_user_by_id(
        user=user,
        retail={s.pk: s.rate for s in services},
        cost_of=cost_of,
        custom=_remembered_custom_rates(user, services),
    )


def _service_costs(services: list[Service]) -> dict[int, Decimal | None]:
    """Each service's cost (service_cost), from the joined upstream when the row has it, the
    others in one query."""
    costs: dict[int, Decimal | None] = {}
    missing = []
    for s in services:
        upstream = s.upstream if Service.upstream.is_cached(s) else None
        if s.upstream_id is None:
            costs[s.pk] = None
        elif upstream is not None and UpstreamService.provider.is_cached(upstream):
            costs[s.pk] = service_cost(s)
        else:
            missing.append(s.pk)
    if missing:
        costs.update(_costs_by_id(missing))
    return costs


def service_rates_for_user_by_id(
    *,
    user: User,
    retail: dict[int, Decimal],
    cost_of: Callable[[int], Decimal | None] | None = None,
    custom: dict[int, Decimal] | None = None,
) -> dict[int, Decimal]:
    """service_rates_for_user for callers holding plain rows: `retail` maps service id to its
    retail rate (the API's `services` lists 5,000 rows without building a model for each), and
    `cost_of` gives a service's cost when a tier discount needs it (without it, the costs are
    read in one query). `custom`: the customer's custom rates when the caller read them
    already (customer_custom_rates)."""
    if custom is None:
        rates = CustomerRate.objects.filter(user=user)
        if len(retail) <= RATES_BY_ID_MAX:
            rates = rates.filter(service__in=list(retail))
        custom = dict(rates.values_list("service_id", "rate"))
    rule = customer_price_terms(user=user)
    if rule.needs_cost and cost_of is None:
        cost_of = _costs_by_id(list(retail)).get
    ask = cost_of if rule.needs_cost else None
    return {
        pk: custom[pk] if pk in custom else rule.rate(rate, ask and (lambda pk=pk: ask(pk)))
        for pk, rate in retail.items()
    }


def _costs_by_id(ids: list[int]) -> dict[int, Decimal | None]:
    rows = Service.objects.filter(pk__in=ids).values_list(
        "pk", "upstream__rate", "upstream__provider__exchange_rate"
    )
    return {
        pk: convert_rate(rate, exchange) if rate is not None else None
        for pk, rate, exchange in rows
    }


def service_rate_for_user(*, user: User, service: Service) -> Decimal:
    """This customer's rate per 1000 (per package for packages) for one service."""
    return service_rates_for_user(user=user, services=[service])[service.pk]


def service_cost(service: Service, *, upstream: UpstreamService | None = None) -> Decimal | None:
    """What the provider charges per 1000 for `service` (or for `upstream`, one of its backups),
    converted to the panel's currency; None for a manual service. The one cost rule: pricing,
    the below-cost checks and the order's cost snapshot all use it."""
    upstream = upstream or service.upstream
    if upstream is None:
        return None
    return convert_rate(upstream.rate, upstream.provider.exchange_rate)


def service_upstream_candidates(
    *, service: Service, start_at: UpstreamService | None = None
) -> list[UpstreamService]:
    """Where an order for `service` can go, in order: its own upstream service, then its
    backups by priority. This is the rule placement (orders.services.placement) follows.

    Upstream services removed upstream or at a disabled provider are left out; providers
    flagged out of funds are kept (provider.out_of_funds_since says so) so that the caller
    decides. With `start_at` (an order's current mapping) the list starts at its position in the
    chain: an order sent again goes back where it was sent last (or, if that mapping is gone,
    to the ones after it), never to the mappings that already refused it.
    One query for the backups (plus the primary's provider if not loaded)."""
    candidates: list[UpstreamService | None] = []
    if service.upstream_id is not None:
        candidates.append(service.upstream)
    backups = (
        ServiceBackup.objects.filter(service=service)
        .select_related("upstream", "upstream__provider")
        .order_by("priority", "id")
    )
    candidates.extend(b.upstream for b in backups)
    if start_at is not None and start_at in candidates:
        # From its position even when it is no longer usable itself: the mappings before it
        # already refused this order.
        candidates = candidates[candidates.index(start_at) :]
    return [
        u for u in candidates if u is not None and u.removed_at is None and u.provider.is_enabled
    ]


def service_list_for_bulk_pricing(
    *, provider_id: int | None = None, category_id: int | None = None, search: str = ""
) -> QuerySet[Service]:
    """The services a bulk change would touch, with their cost's joins chosen."""
    services = Service.objects.select_related("category", "upstream", "upstream__provider")
    if provider_id:
        services = services.filter(upstream__provider_id=provider_id)
    if category_id:
        services = services.filter(category_id=category_id)
    search = search.strip()
    if search:
        match = Q(name__icontains=search) | Q(upstream__service_id=search)
        if search.isdigit():
            match |= Q(pk=int(search))
        services = services.filter(match)
    return services.order_by("category__sort_order", "category__name", "sort_order", "id")
