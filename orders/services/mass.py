"""Mass orders: many `service_id | link | quantity` lines, each one checked, charged and
placed on its own (a refused line costs nothing and does not stop the others)."""

from dataclasses import dataclass

from accounts.models import User
from accounts.services import InsufficientFunds
from catalog.models import Service
from catalog.order_types import TYPE_SPECS, OrderType, spec_for
from catalog.selectors import service_list_enabled
from orders.models import Order
from orders.services.common import OrderError, parse_id
from orders.services.create import order_create

MASS_ORDER_MAX_LINES = 100
# A mass line gives a link and a quantity only: services whose type needs more are refused.
MASS_FIELDS = frozenset({"link", "quantity"})


@dataclass
class MassLine:
    """One line of a mass order and what became of it: `order` when placed, else `error`."""

    number: int  # the line's number in the text the customer sent (blank lines counted)
    text: str
    order: Order | None = None
    error: str = ""


def mass_order_split(*, text: str) -> list[tuple[int, str]]:
    """The non-blank lines of a mass order with their line numbers.

    OrderError("orders") when there is none or more than MASS_ORDER_MAX_LINES."""
    lines = [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not lines:
        raise OrderError("orders", "Write at least one order.")
    if len(lines) > MASS_ORDER_MAX_LINES:
        raise OrderError(
            "orders", f"At most {MASS_ORDER_MAX_LINES} orders at once; this has {len(lines)}."
        )
    return lines


def _parse_line(line: MassLine) -> tuple[int, str, str] | None:
    """(service id, link, quantity) of a line, or None with line.error set."""
    parts = [p.strip() for p in line.text.split("|")]
    if len(parts) != 3:
        line.error = "Write it as: service_id | link | quantity."
        return None
    service_text, link, quantity = parts
    service_id = parse_id(service_text)
    if service_id is None:
        line.error = f"“{service_text}” is not a service id."
        return None
    return service_id, link, quantity


def _orderable(line: MassLine, service: Service | None, service_id: int) -> Service | None:
    if service is None:
        line.error = f"Service {service_id} does not exist or is not on sale."
        return None
    spec = spec_for(service.type) or TYPE_SPECS[OrderType.DEFAULT]
    if set(spec.required) != MASS_FIELDS:
        line.error = (
            f"Service {service.pk} ({service.type}) needs more than a link and "
            "a quantity; order it on the New order page."
        )
        return None
    return service


def order_create_many(*, user: User, lines: list[tuple[int, str]], token: str) -> list[MassLine]:
    """Place one order per line (from mass_order_split) through order_create, source MASS.

    Each line gets the idempotency key `mass:<token>:<line number>`: sending the same batch
    again (a reload) returns the orders already placed and charges nothing more. Returns one
    MassLine per line, in order, with its order or the reason it was refused."""
    results = [MassLine(number=number, text=text) for number, text in lines]
    parsed = [(line, _parse_line(line)) for line in results]
    ids = {fields[0] for _, fields in parsed if fields}
    services = {s.pk: s for s in service_list_enabled().filter(pk__in=ids)}
    for line, fields in parsed:
        if fields is None:
            continue
        service_id, link, quantity = fields
        service = _orderable(line, services.get(service_id), service_id)
        if service is None:
            continue
        try:
            line.order = order_create(
                user=user,
                service=service,
                data={"link": link, "quantity": quantity},
                source=Order.Source.MASS,
                idempotency_key=f"mass:{token}:{line.number}",
            )
        except OrderError as exc:
            line.error = exc.message
        except InsufficientFunds as exc:
            line.error = f"Not enough funds: it costs {exc.amount}, the balance is {exc.balance}."
    return results
