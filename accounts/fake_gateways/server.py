"""The fake gateways' HTTP server: a WSGI app on ``wsgiref`` with one thread per request.

Routes, by the first path segment:

- ``/stripe/...``, ``/cryptomus/...``, ``/paypal/...``: each fake gateway (its module's
  ``handle(ctx, request)``): its API, its checkout page and the Pay / Cancel buttons.
- ``/_fake/deliveries``: the webhooks posted so far (JSON), for tests and demos;
  ``/_fake/reset`` (POST) forgets everything.
- ``/``: a short description.

Webhooks are posted from a background thread, retried with back-off while the panel answers
anything but 2xx (as the real gateways do), each attempt recorded.
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref import simple_server

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8766
GATEWAYS = ("stripe", "cryptomus", "paypal")
MAX_BODY_BYTES = 1024 * 1024

WsgiEnviron = dict[str, Any]
StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class FakeConfig:
    """What the server is started with. The secrets are the ones the panel is configured with
    (the demo's and the tests' defaults match panel/settings.py's DEBUG defaults)."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    panel_url: str = "http://127.0.0.1:8000"  # where webhooks configured "in a dashboard" go
    stripe_secret_key: str = "sk_test_fake"
    stripe_webhook_secret: str = "whsec_fake"
    cryptomus_merchant: str = "fake-merchant"
    cryptomus_payment_key: str = "fake-payment-key"
    paypal_client_id: str = "fake-client-id"
    paypal_client_secret: str = "fake-client-secret"
    paypal_webhook_id: str = "FAKE-WEBHOOK-ID"
    webhook_attempts: int = 5
    webhook_backoff: float = 0.5  # seconds before the 2nd attempt, doubled for each next one
    quiet: bool = False


@dataclass
class Request:
    method: str
    path: str  # after the gateway prefix, e.g. "/v1/checkout/sessions"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @classmethod
    def from_environ(cls, environ: WsgiEnviron, path: str) -> Request:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(min(length, MAX_BODY_BYTES)) if length else b""
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        return cls(environ["REQUEST_METHOD"], path or "/", query, headers, body)

    def form(self) -> dict[str, str]:
        """The body as form fields (Stripe's API, the checkout buttons). Nested Stripe keys
        stay flat: "metadata[ref]"."""
        fields = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in fields.items()}

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(data).encode(), "application/json")

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), "text/html; charset=utf-8")

    @classmethod
    def redirect(cls, url: str) -> Response:
        return cls(303, b"", "text/plain", [("Location", url)])


@dataclass
class Delivery:
    gateway: str
    url: str
    body: str
    headers: dict[str, str]
    attempts: list[dict[str, Any]] = field(default_factory=list)


class Context:
    """What the gateway handlers share: the config, the server's own address, a store per
    gateway (a dict under one lock) and the webhook sender."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.base_url = ""
        self.lock = threading.RLock()
        self.stores: dict[str, dict[str, Any]] = {name: {} for name in GATEWAYS}
        self.deliveries: list[Delivery] = []
        self.stop_event = threading.Event()

    def store(self, gateway: str) -> dict[str, Any]:
        return self.stores[gateway]

    def gateway_url(self, gateway: str) -> str:
        return f"{self.base_url}/{gateway}"

    def reset(self) -> None:
        with self.lock:
            for store in self.stores.values():
                store.clear()
            self.deliveries.clear()

    def post_webhook(
        self, gateway: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> Delivery:
        """Post `body` to `url` from a background thread until it gets a 2xx or runs out of
        attempts; returns the delivery, whose `attempts` fill in as they happen."""
        delivery = Delivery(gateway, url, body.decode(), dict(headers))
        with self.lock:
            self.deliveries.append(delivery)
        threading.Thread(
            target=self._deliver, args=(delivery, body), daemon=True, name=f"webhook-{gateway}"
        ).start()
        return delivery

    def _deliver(self, delivery: Delivery, body: bytes) -> None:
        wait = self.config.webhook_backoff
        for _ in range(max(1, self.config.webhook_attempts)):
            status = _post(delivery.url, body, delivery.headers)
            with self.lock:
                delivery.attempts.append({"status": status, "at": time.time()})
            if 200 <= status < 300 or self.stop_event.wait(wait):
                return
            wait *= 2


def _post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    if not url.startswith(("http://", "https://")):
        return 0
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return 0  # unreachable: retried like an error answer


def checkout_page(
    *, title: str, lines: Iterable[str], pay_action: str, cancel_action: str
) -> Response:
    """The fake checkout: what is being paid and two buttons (plain forms: no script)."""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return Response.html(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title></head>
<body><main><h1>{escape(title)}</h1><p>This is a fake gateway for development: no money moves.</p>
<ul>{items}</ul>
<form method="post" action="{escape(pay_action)}"><button type="submit">Pay</button></form>
<form method="post" action="{escape(cancel_action)}"><button type="submit">Cancel</button></form>
</main></body></html>"""
    )


def _handler(gateway: str) -> Callable[[Context, Request], Response] | None:
    try:
        module = importlib.import_module(f"accounts.fake_gateways.{gateway}")
    except ModuleNotFoundError:
        return None
    handle: Callable[[Context, Request], Response] = module.handle
    return handle


class FakeGatewaysApp:
    def __init__(self, context: Context) -> None:
        self.context = context

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> list[bytes]:
        response = self.route(environ)
        headers = [("Content-Type", response.content_type), *response.headers]
        headers.append(("Content-Length", str(len(response.body))))
        start_response(f"{response.status} {_reason(response.status)}", headers)
        return [response.body]

    def route(self, environ: WsgiEnviron) -> Response:
        path = environ.get("PATH_INFO", "/")
        first, _, rest = path.lstrip("/").partition("/")
        if first == "_fake":
            return self._control(environ, rest)
        if first in GATEWAYS:
            handle = _handler(first)
            if handle is None:
                return Response.json({"error": f"the fake {first} is not built"}, 404)
            try:
                return handle(self.context, Request.from_environ(environ, "/" + rest))
            except Exception as exc:  # a bug in a fake must answer, not hang the client
                print(f"fake {first}: {exc!r}", file=sys.stderr)
                return Response.json({"error": f"fake {first} failed: {exc}"}, 500)
        if path == "/":
            return Response.json(
                {"fake_gateways": list(GATEWAYS), "deliveries": "/_fake/deliveries"}
            )
        return Response.json({"error": "not found"}, 404)

    def _control(self, environ: WsgiEnviron, rest: str) -> Response:
        if rest == "deliveries":
            with self.context.lock:
                data = [vars(d) | {"attempts": list(d.attempts)} for d in self.context.deliveries]
            return Response.json(data)
        if rest == "reset" and environ["REQUEST_METHOD"] == "POST":
            self.context.reset()
            return Response.json({"ok": True})
        return Response.json({"error": "not found"}, 404)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        if not getattr(self.server, "quiet", False):
            super().log_message(format, *args)


class FakeGatewaysServer(ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    quiet = False
    context: Context

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def make_server(config: FakeConfig) -> FakeGatewaysServer:
    context = Context(config)
    server = simple_server.make_server(
        config.host, config.port, FakeGatewaysApp(context), FakeGatewaysServer, _QuietHandler
    )
    context.base_url = f"http://{config.host}:{server.port}"
    server.context = context
    server.quiet = config.quiet
    return server
