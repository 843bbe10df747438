"""Small factories for orders tests: providers, upstream services and panel services made
directly (the catalog sync is another helper's), mapped to the sandbox's catalog ids."""

from decimal import Decimal
from itertools import count

from catalog.models import Category, Service, ServiceBackup, UpstreamService
from providers.models import Provider

_seq = count(1)

# The sandbox's base catalog (providers/sandbox/catalog.py): id -> (type, rate, min, max,
# refill, cancel, dripfeed).
SANDBOX = {
    1: ("Default", "0.90", 50, 10000, True, True, False),
    2: ("Default", "0.35", 100, 50000, False, False, True),
    3: ("Default", "0.125", 10, 20000, False, True, True),
    4: ("Package", "2.5", 1, 1, False, False, False),
    5: ("Custom Comments", "8", 10, 1500, False, True, False),
    6: ("Custom Comments Package", "1.20000", 1, 1, False, False, False),
    7: ("Comment Likes", "1.8", 20, 5000, False, True, False),
    8: ("Comment Replies", "12.5", 5, 500, False, True, False),
    9: ("Mentions with Hashtags", "3.21", 100, 5000, False, False, False),
    10: ("Mentions Custom List", "4.5", 10, 1000, False, False, False),
    11: ("Mentions Hashtag", "2.75", 100, 10000, False, False, False),
    12: ("Mentions User Followers", "2.99", 100, 10000, False, False, False),
    13: ("Mentions Media Likers", "3.05", 100, 10000, False, False, False),
    14: ("Poll", "0.75", 100, 10000, False, True, False),
    15: ("Subscriptions", "0.15", 50, 5000, False, True, False),
    20: ("Invites from Groups", "6.5", 100, 5000, False, True, False),
}
# The sandbox id to use for each order type.
SANDBOX_ID_FOR_TYPE = {spec[0]: sid for sid, spec in sorted(SANDBOX.items(), reverse=True)}


def make_provider(
    *,
    api_url: str = "http://127.0.0.1:9/api/v2",
    key: str = "sandbox-key",
    name: str | None = None,
    **fields,
) -> Provider:
    provider = Provider(name=name or f"provider-{next(_seq)}", api_url=api_url, **fields)
    provider.set_api_key(key)
    provider.save()
    return provider


def make_upstream(*, provider: Provider, sandbox_id: int = 1, **fields) -> UpstreamService:
    type_, rate, low, high, refill, cancel, drip = SANDBOX[sandbox_id]
    values = dict(
        name=f"Sandbox #{sandbox_id}",
        type=type_,
        rate=Decimal(rate),
        min=low,
        max=high,
        refill=refill,
        cancel=cancel,
        dripfeed=drip,
    )
    values.update(fields)
    upstream, _ = UpstreamService.objects.get_or_create(
        provider=provider, service_id=str(sandbox_id), defaults=values
    )
    return upstream


def make_service(
    *,
    upstream: UpstreamService | None = None,
    provider: Provider | None = None,
    sandbox_id: int | None = None,
    order_type: str | None = None,
    rate: str | Decimal | None = None,
    **fields,
) -> Service:
    """A panel service. With `provider` and a sandbox id (or an order type), it maps to that
    sandbox service with its limits and flags; the retail rate is twice the upstream's unless
    given."""
    if sandbox_id is None and order_type is not None:
        sandbox_id = SANDBOX_ID_FOR_TYPE[order_type]
    if upstream is None and provider is not None:
        upstream = make_upstream(provider=provider, sandbox_id=sandbox_id or 1)
    category, _ = Category.objects.get_or_create(name="Tests")
    if upstream is not None:
        values = dict(
            type=upstream.type,
            min=upstream.min,
            max=upstream.max,
            refill=upstream.refill,
            cancel=upstream.cancel,
            dripfeed=upstream.dripfeed,
            rate=upstream.rate * 2,
        )
    else:
        values = dict(type=order_type or "Default", min=10, max=10000, rate=Decimal("1.00"))
    if rate is not None:
        values["rate"] = Decimal(str(rate))
    values.update(fields)
    return Service.objects.create(
        name=f"Service {next(_seq)}", category=category, upstream=upstream, **values
    )


def add_backup(*, service: Service, upstream: UpstreamService, priority: int = 1) -> ServiceBackup:
    return ServiceBackup.objects.create(service=service, upstream=upstream, priority=priority)
