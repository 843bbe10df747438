"""Attachments are judged by their bytes (Pillow): PNG and JPEG only, whole, at most 2 MB;
stored under MEDIA_ROOT with a random name and the extension the bytes proved."""

from pathlib import Path

import pytest
from django.conf import settings

from support.models import Ticket, TicketAttachment
from support.services import ATTACHMENT_MAX_BYTES, TicketError, attachment_check, ticket_reply
from tests.support.helpers import image_bytes, open_ticket, upload

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("fmt", "content_type", "extension"),
    [("PNG", "image/png", ".png"), ("JPEG", "image/jpeg", ".jpg")],
)
def test_png_and_jpeg_are_accepted(fmt, content_type, extension):
    checked = attachment_check(upload("shot", image_bytes(fmt)))
    assert (checked.content_type, checked.extension) == (content_type, extension)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        # A .png renamed .jpg holding other bytes: a page, a script, a zip.
        ("photo.jpg", b"<html><script>alert(1)</script></html>"),
        ("photo.png", b"#!/bin/sh\nrm -rf /\n"),
        ("photo.jpg", b"PK\x03\x04" + b"\x00" * 200),
        # A GIF, named as what it is or as a PNG.
        ("anim.gif", image_bytes("GIF")),
        ("anim.png", image_bytes("GIF")),
        # Other real images that are not PNG or JPEG.
        ("pic.png", image_bytes("BMP")),
        ("pic.jpg", image_bytes("WEBP")),
        # A real PNG cut short: its header is right, its pixels are not there.
        ("cut.png", image_bytes("PNG", size=(300, 300), noise=True)[:2000]),
        # PNG's signature and nothing more.
        ("sig.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 10),
    ],
)
def test_files_that_are_not_whole_png_or_jpeg_are_refused(name, data):
    with pytest.raises(TicketError) as caught:
        attachment_check(upload(name, data, content_type="image/png"))
    assert caught.value.field == "attachment"
    assert "Only PNG and JPEG" in caught.value.message


def test_more_than_2_mb_is_refused_even_a_real_png():
    data = image_bytes("PNG", size=(1024, 1024), noise=True)  # random pixels: ~3 MB
    assert len(data) > ATTACHMENT_MAX_BYTES
    with pytest.raises(TicketError) as caught:
        attachment_check(upload("big.png", data))
    assert (caught.value.field, caught.value.message) == (
        "attachment",
        "The file is larger than 2 MB: attach a smaller image.",
    )
    just_under = image_bytes("PNG", size=(800, 800), noise=True)  # ~1.9 MB
    assert len(just_under) <= ATTACHMENT_MAX_BYTES
    attachment_check(upload("ok.png", just_under))


def test_an_empty_file_is_refused():
    with pytest.raises(TicketError) as caught:
        attachment_check(upload("empty.png", b""))
    assert caught.value.field == "attachment"


def test_stored_under_media_root_with_a_random_name_and_the_proven_type(alice):
    data = image_bytes("PNG")
    ticket = open_ticket(alice, attachment=upload("../../etc/My Shot.jpg", data, "image/jpeg"))
    (attachment,) = TicketAttachment.objects.filter(message__ticket=ticket)
    assert (attachment.name, attachment.content_type, attachment.size) == (
        "My Shot.png",
        "image/png",
        len(data),
    )
    stored = Path(attachment.file.path)
    assert stored.is_relative_to(Path(settings.MEDIA_ROOT) / "support")
    assert stored.suffix == ".png" and "Shot" not in stored.name
    assert stored.read_bytes() == data
    assert not stored.is_relative_to(Path(settings.BASE_DIR) / "static")


def test_a_refused_attachment_writes_no_ticket_and_no_file(alice):
    with pytest.raises(TicketError):
        open_ticket(alice, attachment=upload("x.png", image_bytes("GIF")))
    assert not Ticket.objects.exists()
    assert not (Path(settings.MEDIA_ROOT) / "support").exists()


def test_a_reply_with_a_refused_attachment_writes_nothing(alice):
    ticket = open_ticket(alice)
    with pytest.raises(TicketError):
        ticket_reply(ticket=ticket, author=alice, body="see", attachment=upload("x.jpg", b"no"))
    assert ticket.messages.count() == 1


def test_a_file_whose_row_cannot_be_written_is_not_left_on_disk(alice, monkeypatch):
    def fail(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(TicketAttachment, "save", fail)
    with pytest.raises(RuntimeError):
        open_ticket(alice, attachment=upload("x.png", image_bytes("PNG")))
    stored = [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    assert stored == []
    assert not Ticket.objects.exists()
