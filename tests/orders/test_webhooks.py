"""Resellers' webhooks: events published with each status change (and never on a rollback),
delivered signed over real HTTP on loopback, retried, and never posted to a private address
unless allowed."""

import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from django.utils import timezone

from orders.models import CancelRequest, Order, Refill, WebhookEndpoint, WebhookEvent
from orders.services import (
    OrderError,
    order_cancel_request,
    order_create,
    order_refill_request,
    order_set_status,
    order_submit,
    provider_poll_orders,
    webhook_endpoint_set,
    webhook_event_deliver,
    webhook_event_retry,
    webhook_send_test,
    webhooks_retry_due,
)
from orders.services.webhooks import (
    address_refusal,
    retry_delay,
    signature_header,
    signature_verify,
    webhook_url_clean,
)
from providers.crypto import encrypt
from tests.orders.factories import make_service

pytestmark = pytest.mark.django_db
S = Order.Status
EV = WebhookEvent.Status


def independent_verify(header: str, body: bytes, secret: str) -> bool:
    """The check a receiver makes, written here apart from the panel's code."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    signed = parts["t"].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return abs(time.time() - int(parts["t"])) < 300 and hmac.compare_digest(expected, parts["v1"])


class Receiver:
    """A webhook receiver over real HTTP on loopback: records every request and answers with
    the next of `codes` (then 200)."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.codes = list(codes or [])
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code == 200 else b"broken")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook?x=1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def allow_loopback(settings):
    settings.DEBUG = True  # http:// allowed for the URL
    settings.PANEL_WEBHOOKS_ALLOW_PRIVATE = True


@pytest.fixture
def hooked(alice, receiver, allow_loopback):
    """alice with a webhook to the receiver; returns her secret."""
    return webhook_endpoint_set(user=alice, url=receiver.url).secret


def _order(user):
    """An order not sent anywhere (a service without a provider), which may be canceled."""
    service = make_service(cancel=True)
    return order_create(
        user=user, service=service, data={"link": "https://x.com/p/1", "quantity": "100"}
    )


# --- one event per change, in order, signed ----------------------------------------------------


def test_receiver_gets_each_change_once_in_order_signed(
    alice, sandbox, provider, receiver, hooked, django_capture_on_commit_callbacks
):
    sandbox.config(speed=2.0)
    service = make_service(provider=provider, sandbox_id=1)
    order = order_create(
        user=alice, service=service, data={"link": "https://x.com/p/1", "quantity": "300"}
    )
    with django_capture_on_commit_callbacks(execute=False):
        order_submit(order_id=order.pk)  # queued -> submitting -> pending: all "Pending"
    assert WebhookEvent.objects.count() == 0
    time.sleep(0.5)  # past the sandbox's Pending tenth
    later = timezone.now() + timedelta(minutes=10)
    with django_capture_on_commit_callbacks(execute=True):
        provider_poll_orders(provider=provider, now=later)  # bulk path: In progress
    with django_capture_on_commit_callbacks(execute=True):
        Order.objects.filter(pk=order.pk).update(next_poll_at=timezone.now())
        provider_poll_orders(provider=provider, now=later + timedelta(minutes=10))  # the same
    time.sleep(2.0)
    with django_capture_on_commit_callbacks(execute=True):
        provider_poll_orders(provider=provider, now=later + timedelta(minutes=30))  # Completed
    events = receiver.events()
    assert [(e["type"], e["data"]["status"]) for e in events] == [
        ("order.status", "In progress"),
        ("order.status", "Completed"),
    ]
    order.refresh_from_db()
    last = events[-1]["data"]
    assert last == {
        "order": order.pk,
        "status": "Completed",
        "previous_status": "In progress",
        "remains": order.remains,
        "start_count": order.start_count,
        "charge": str(order.charge),
        "refund": "0.00000",
        "currency": "USD",
    }
    assert len({e["id"] for e in events}) == 2
    for request in receiver.requests:
        header = request["headers"]["X-Panel-Signature"]
        assert independent_verify(header, request["body"], hooked)
        assert signature_verify(secret=hooked, header=header, body=request["body"])
        assert request["headers"]["Host"] == f"127.0.0.1:{receiver.port}"
    assert set(WebhookEvent.objects.values_list("status", "attempts")) == {(EV.DELIVERED, 1)}


def test_refill_and_cancel_changes_publish_their_own_events(
    alice, receiver, hooked, django_capture_on_commit_callbacks
):
    order = _order(alice)
    with django_capture_on_commit_callbacks(execute=True):
        cancel = order_cancel_request(user=alice, order=order)  # not sent yet: canceled at once
    events = receiver.events()
    assert [(e["type"], e["data"]["status"]) for e in events] == [
        ("order.status", "Canceled"),
        ("cancel.status", "Completed"),
    ]
    assert events[0]["data"]["refund"] == str(order.charge)
    assert events[1]["data"] == {
        "cancel": cancel.pk,
        "order": order.pk,
        "status": "Completed",
        "previous_status": None,
    }


def test_refill_request_publishes_pending(
    alice, sandbox, provider, receiver, hooked, django_capture_on_commit_callbacks
):
    service = make_service(provider=provider, sandbox_id=1)
    order = order_create(
        user=alice, service=service, data={"link": "https://x.com/p/2", "quantity": "300"}
    )
    order = order_submit(order_id=order.pk)
    with django_capture_on_commit_callbacks(execute=True):
        order_set_status(order=order, new=S.COMPLETED, source="admin", remains=0)
        refill = order_refill_request(user=alice, order=order)
    kinds = [(e["type"], e["data"]["status"]) for e in receiver.events()]
    assert kinds[:2] == [("order.status", "Completed"), ("refill.status", "Pending")]
    assert receiver.events()[1]["data"]["refill"] == refill.pk
    assert Refill.objects.filter(pk=refill.pk).exists()


def test_no_event_when_the_transaction_rolls_back(
    alice, receiver, hooked, django_capture_on_commit_callbacks
):
    order = _order(alice)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        order_set_status(order=order, new=S.CANCELED, source="admin")
        assert WebhookEvent.objects.count() == 1  # written with the change...
        raise RuntimeError("something after the change failed")
    assert WebhookEvent.objects.count() == 0  # ...and gone with it
    assert callbacks == [] and receiver.requests == []
    assert CancelRequest.objects.count() == 0


def test_no_event_without_a_webhook_or_when_paused(alice, receiver, allow_loopback):
    order_set_status(order=_order(alice), new=S.CANCELED, source="admin")
    webhook_endpoint_set(user=alice, url=receiver.url, is_active=False)
    order_set_status(order=_order(alice), new=S.CANCELED, source="admin")
    assert WebhookEvent.objects.count() == 0


# --- retries -------------------------------------------------------------------------------------


def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_try(
    alice, hooked, receiver, django_capture_on_commit_callbacks
):
    receiver.codes = [500, 503]
    order = _order(alice)
    with django_capture_on_commit_callbacks(execute=True):
        order_set_status(order=order, new=S.CANCELED, source="admin")
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts, event.last_status_code) == (EV.PENDING, 1, 500)
    assert event.last_error == "HTTP 500" and event.response_excerpt == "broken"
    assert event.next_attempt_at > timezone.now() + timedelta(seconds=50)
    assert webhook_event_deliver(event_id=event.pk) is None  # not due yet: nothing sent
    assert webhooks_retry_due() == 0
    # Time passes: the sweep (what beat runs every minute) finds it due and tries again.
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
    assert webhooks_retry_due() == 1
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_status_code) == (EV.PENDING, 2, 503)
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
    assert webhooks_retry_due() == 1
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_status_code) == (EV.DELIVERED, 3, 200)
    assert event.delivered_at is not None and event.next_attempt_at is None
    bodies = {r["body"] for r in receiver.requests}
    assert len(receiver.requests) == 3 and len(bodies) == 1  # the same event each time


def test_a_later_event_waits_for_the_earlier_one_of_its_order(
    alice, hooked, receiver, django_capture_on_commit_callbacks
):
    receiver.codes = [500]
    service = make_service()
    order = order_create(
        user=alice, service=service, data={"link": "https://x.com/p/3", "quantity": "100"}
    )
    with django_capture_on_commit_callbacks(execute=True):
        order_set_status(order=order, new=S.IN_PROGRESS, source="admin")
    with django_capture_on_commit_callbacks(execute=True):
        order_set_status(order=order, new=S.COMPLETED, source="admin")
    first, second = WebhookEvent.objects.order_by("pk")
    assert len(receiver.requests) == 1  # the first failed; the second waits behind it
    assert webhook_event_deliver(event_id=second.pk) is None
    WebhookEvent.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now())
    webhooks_retry_due()  # the first goes, then the second right after it
    assert [e["data"]["status"] for e in receiver.events()] == [
        "In progress",
        "In progress",
        "Completed",
    ]
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {EV.DELIVERED}


def test_an_event_is_given_up_after_24_hours(alice, hooked, receiver):
    receiver.codes = [500] * 5
    order_set_status(order=_order(alice), new=S.CANCELED, source="admin")
    event = WebhookEvent.objects.get()
    assert event.give_up_at == event.created_at + timedelta(hours=24)
    # 30 s before the 24 hours: the next try (1 minute ±10 % jitter) would come after them.
    last_try = event.created_at + timedelta(hours=23, minutes=59, seconds=30)
    webhook_event_deliver(event_id=event.pk, now=last_try)
    event.refresh_from_db()
    assert event.status == EV.FAILED and event.next_attempt_at is None
    # Staff's "retry now" gives it one more attempt.
    webhook_event_retry(event=event)
    webhook_event_deliver(event_id=event.pk)
    event.refresh_from_db()
    assert event.status == EV.FAILED and event.attempts == 2


def test_retry_delay_grows_exponentially_to_two_hours():
    class Middle:
        def uniform(self, a, b):
            return 1.0

    delays = [retry_delay(n, rng=Middle()) for n in (1, 2, 3, 4, 8, 30)]
    assert delays == [timedelta(minutes=m) for m in (1, 2, 4, 8, 120, 120)]


def test_test_event_is_delivered_once_and_needs_a_webhook(
    alice, bob, hooked, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        event = webhook_send_test(user=alice)
    assert receiver.events()[0]["type"] == "test" and receiver.events()[0]["id"] == event.event_id
    with pytest.raises(OrderError):
        webhook_send_test(user=bob)


# --- addresses -----------------------------------------------------------------------------------


def _endpoint(user, url):
    return WebhookEndpoint.objects.create(
        user=user, url=url, secret_encrypted=encrypt("whsec_x"), secret_hint="whsec_x"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",  # a name that resolves to 127.0.0.1 / ::1
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0:{port}/",
    ],
)
def test_private_addresses_are_refused_after_resolution(alice, receiver, settings, url):
    settings.PANEL_WEBHOOKS_ALLOW_PRIVATE = False
    _endpoint(alice, url.format(port=receiver.port))
    order_set_status(order=_order(alice), new=S.CANCELED, source="admin")
    event = webhook_event_deliver(event_id=WebhookEvent.objects.get().pk)
    assert event.status == EV.PENDING and event.attempts == 1 and event.last_status_code is None
    assert "address" in event.last_error and "public addresses only" in event.last_error
    assert receiver.requests == []


def test_a_name_is_resolved_once_and_the_checked_address_is_the_one_connected_to(
    alice, receiver, settings, monkeypatch
):
    """DNS rebinding: the name is resolved once, checked, and the connection goes to that
    address with the name in the Host header, so a second answer cannot redirect it."""
    answers = iter(["127.0.0.1", "10.9.9.9"])
    calls = []
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if host == "hooks.example.test":
            calls.append(host)
            return real(next(answers), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    settings.PANEL_WEBHOOKS_ALLOW_PRIVATE = True
    _endpoint(alice, f"http://hooks.example.test:{receiver.port}/hook")
    order_set_status(order=_order(alice), new=S.CANCELED, source="admin")
    event = webhook_event_deliver(event_id=WebhookEvent.objects.get().pk)
    assert event.status == EV.DELIVERED
    assert calls == ["hooks.example.test"]
    assert receiver.requests[0]["headers"]["Host"] == f"hooks.example.test:{receiver.port}"


def test_a_name_with_any_private_answer_is_refused(alice, settings, monkeypatch):
    settings.PANEL_WEBHOOKS_ALLOW_PRIVATE = False
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host == "mixed.example.test":
            return real("93.184.216.34", port, *args, **kwargs) + real(
                "10.0.0.7", port, *args, **kwargs
            )
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    _endpoint(alice, "https://mixed.example.test/hook")
    order_set_status(order=_order(alice), new=S.CANCELED, source="admin")
    event = webhook_event_deliver(event_id=WebhookEvent.objects.get().pk)
    assert "10.0.0.7 is a private address" in event.last_error


def test_redirects_are_not_followed(alice, receiver, allow_loopback):
    receiver.codes = [302]
    _endpoint(alice, receiver.url)
    order_set_status(order=_order(alice), new=S.CANCELED, source="admin")
    event = webhook_event_deliver(event_id=WebhookEvent.objects.get().pk)
    assert event.status == EV.PENDING and event.last_status_code == 302
    assert len(receiver.requests) == 1


def test_address_refusal_classifies_addresses():
    assert address_refusal("93.184.216.34") is None
    assert address_refusal("2606:2800:220:1:248:1893:25c8:1946") is None
    for address, what in [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("172.16.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("::ffff:10.0.0.1", "private"),
    ]:
        assert what in address_refusal(address), address


# --- the URL at the field ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/hook", "must start with https://"),
        ("ftp://example.com/hook", "full address"),
        ("example.com/hook", "full address"),
        ("https://user:pw@example.com/hook", "user name and password"),
        ("https://10.0.0.1/hook", "10.0.0.1 is a private address"),
        ("https://localhost/hook", "not to localhost"),
        ("https://example.com:99999/hook", "not a valid web address"),
    ],
)
def test_webhook_url_is_checked_at_the_field(settings, url, message):
    settings.DEBUG = False
    settings.PANEL_WEBHOOKS_ALLOW_PRIVATE = False
    with pytest.raises(OrderError) as caught:
        webhook_url_clean(url)
    assert caught.value.field == "url" and message in caught.value.message


def test_webhook_url_https_is_accepted(settings):
    settings.DEBUG = False
    settings.PANEL_WEBHOOKS_ALLOW_PRIVATE = False
    assert webhook_url_clean(" https://example.com/hook ") == "https://example.com/hook"


# --- signatures ----------------------------------------------------------------------------------


def test_signature_verify_accepts_the_panels_header_and_refuses_the_rest():
    body = b'{"id":"evt_1"}'
    now = int(time.time())
    header = signature_header(secret="whsec_a", timestamp=now, body=body)
    assert header.startswith(f"t={now},v1=")
    assert signature_verify(secret="whsec_a", header=header, body=body)
    assert independent_verify(header, body, "whsec_a")
    assert not signature_verify(secret="whsec_b", header=header, body=body)
    assert not signature_verify(secret="whsec_a", header=header, body=body + b" ")
    old = signature_header(secret="whsec_a", timestamp=now - 301, body=body)
    assert not signature_verify(secret="whsec_a", header=old, body=body)
    assert signature_verify(secret="whsec_a", header=old, body=body, tolerance=400)
    assert not signature_verify(secret="whsec_a", header=header.split(",")[0], body=body)
    assert not signature_verify(secret="whsec_a", header="", body=body)
    assert not signature_verify(secret="whsec_a", header=f"t=x,{header.split(',')[1]}", body=body)
    # A second v1 (the receiver rotating secrets) is fine; a forged one alone is not.
    assert signature_verify(secret="whsec_a", header=header + ",v1=00", body=body)
    assert not signature_verify(secret="whsec_a", header=f"t={now},v1=00", body=body)


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(b"whsec_k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert signature_header(secret="whsec_k", timestamp=1700000000, body=b"{}") == (
        f"t=1700000000,v1={expected}"
    )


# --- https to the checked address ----------------------------------------------------------------


def _certificate(tmp_path, name: str):
    """A self-signed certificate for `name` (its own CA), as PEM files."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch):
    """The receiver behind TLS with a certificate for hooks.example.test, a name that resolves
    to 127.0.0.1 here."""
    import ssl

    cert, key = _certificate(tmp_path, "hooks.example.test")
    server = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        return real("127.0.0.1" if host == "hooks.example.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    server.cert = cert
    yield server
    server.close()


def test_https_goes_to_the_checked_address_and_checks_the_certificate_for_the_name(
    alice, tls_receiver, settings, monkeypatch
):
    settings.PANEL_WEBHOOKS_ALLOW_PRIVATE = True
    _endpoint(alice, f"https://hooks.example.test:{tls_receiver.port}/hook")
    order_set_status(order=_order(alice), new=S.CANCELED, source="admin")
    event_id = WebhookEvent.objects.get().pk
    # Not signed by a CA the panel trusts: refused by the TLS check, nothing delivered.
    event = webhook_event_deliver(event_id=event_id)
    assert event.status == EV.PENDING and "certificate" in event.last_error.lower()
    assert tls_receiver.requests == []
    # Trusted: delivered to 127.0.0.1 with the certificate checked against the name (SNI).
    monkeypatch.setattr("orders.services.webhooks.certifi.where", lambda: tls_receiver.cert)
    WebhookEvent.objects.filter(pk=event_id).update(next_attempt_at=timezone.now())
    event = webhook_event_deliver(event_id=event_id)
    assert event.status == EV.DELIVERED, event.last_error
    assert tls_receiver.requests[0]["headers"]["Host"] == f"hooks.example.test:{tls_receiver.port}"


def test_an_unexpected_error_is_recorded_so_the_event_is_retried_and_given_up_in_time(
    alice, hooked, monkeypatch
):
    def broken(endpoint, event):
        raise ValueError("something nobody expected")

    monkeypatch.setattr("orders.services.webhooks._attempt", broken)
    order_set_status(order=_order(alice), new=S.CANCELED, source="admin")
    event = webhook_event_deliver(event_id=WebhookEvent.objects.get().pk)
    event.refresh_from_db()
    assert event.status == EV.PENDING and event.locked_until is None
    assert event.last_error == "ValueError: something nobody expected"
    assert event.next_attempt_at > timezone.now()
