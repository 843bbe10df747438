"""Images made by Pillow for the attachment checks, and orders made directly for tickets."""

import io
import os
from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from orders.models import Order
from support.models import Ticket
from support.services import TicketSubject, ticket_create
from tests.orders.factories import make_provider, make_service


def image_bytes(fmt: str, size: tuple[int, int] = (32, 24), noise: bool = False) -> bytes:
    """A real image in `fmt` (PNG, JPEG, GIF); with `noise`, random pixels that do not compress."""
    if noise:
        image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        image = Image.new("RGB", size, (200, 30, 60))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def upload(name: str, data: bytes, content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def png(name: str = "screenshot.png") -> SimpleUploadedFile:
    return upload(name, image_bytes("PNG"))


def make_order(user, *, status: str = Order.Status.IN_PROGRESS, **fields) -> Order:
    """An order of `user` made directly (no charge taken): enough for a ticket to refer to."""
    service = fields.pop("service", None) or make_service(provider=make_provider())
    values = dict(
        user=user,
        service=service,
        status=status,
        link="https://example.com/p/1",
        quantity=100,
        rate=Decimal("2.00"),
        charge=Decimal("0.20000"),
        provider=service.upstream.provider if service.upstream else None,
        upstream_order_id="9001",
    )
    values.update(fields)
    return Order.objects.create(**values)


def open_ticket(
    customer, *, kind: str = "other", subject: str = "Help", body: str = "Hello", **about
) -> Ticket:
    attachment = about.pop("attachment", None)
    return ticket_create(
        customer=customer,
        about=TicketSubject(kind=kind, **about),
        subject=subject,
        body=body,
        attachment=attachment,
    )
