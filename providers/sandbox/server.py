"""The sandbox provider's HTTP server: a WSGI app on ``wsgiref`` with one thread per connection.

Pure standard library on purpose (no Django): it starts in milliseconds, runs as its own
process next to the panel, and the panel talks to it over real HTTP exactly as it talks to a
paying upstream.

Routes:

- ``/api/v2`` (and ``/api/v2/``): the provider API. POST form fields, a JSON body, multipart, or
  a GET query string; ``key`` + ``action`` like every API v2 provider. API errors are
  ``{"error": "..."}`` with HTTP 200.
- ``/_sandbox/...``: the control API for tests and demos (faults, request log, orders, reset,
  balance, speed), protected by the control key (``X-Sandbox-Key`` header or ``key`` field).
- ``/``: a short JSON description of the server.

A thread per connection matters for fault injection: a request stuck in a ``timeout`` fault must
not hold up the next one (a client that gave up on it opens a new connection). Answers are
HTTP/1.1 with a Content-Length, so a client may keep its connection open across requests
(keep-alive, as a provider's web server allows); an idle connection is closed after
KEEP_ALIVE_SECONDS, a dropped one (the ``drop`` faults) is closed at once. Sleeps wait on ``stop_event`` so stopping the server never waits for
a 30-second fault to run out.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP as HTTP_POLICY
from http import HTTPStatus
from socketserver import TCPServer, ThreadingMixIn
from typing import IO, Any, cast
from urllib.parse import parse_qs
from wsgiref import simple_server
from wsgiref.headers import Headers

from providers.sandbox import dialects
from providers.sandbox import faults as fl
from providers.sandbox.api import Api, RuntimeSettings
from providers.sandbox.catalog import Catalog
from providers.sandbox.common import ApiError, format_money
from providers.sandbox.store import Store

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_DB = "var/sandbox.sqlite3"
DEFAULT_KEY = "sandbox-key"
DEFAULT_SPEED = 60.0
DEFAULT_TIMEOUT_SECONDS = 30.0
API_PATH = "/api/v2"
CONTROL_PREFIX = "/_sandbox/"
MAX_BODY_BYTES = 10 * 1024 * 1024
KEEP_ALIVE_SECONDS = 30.0

WsgiEnviron = dict[str, Any]
StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the server is started with. ``balance=None`` keeps the stored balance."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db_path: str = DEFAULT_DB
    keys: tuple[str, ...] = (DEFAULT_KEY,)
    control_key: str | None = None  # None: any API key also opens the control API
    speed: float = DEFAULT_SPEED
    balance: Decimal | None = None
    currency: str = "USD"
    services: int = 0  # total catalog size; at most the base size means the base catalog
    partial_percent: int = 0
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    faults: tuple[Mapping[str, Any], ...] = ()
    quiet: bool = False
    reset_state: bool = False  # wipe orders, refills, cancels and the log at start
    dialect: str = dialects.FULL  # answer like one seed provider (providers/sandbox/dialects.py)
    refuse: tuple[str, ...] = ()  # extra refusal rules, e.g. ("status:orders",)

    def __post_init__(self) -> None:
        if isinstance(self.keys, str):  # serve(keys="abc") means one key, not three
            object.__setattr__(self, "keys", (self.keys,))
        dialects.get_dialect(self.dialect)  # DialectError now, not at the first request
        object.__setattr__(self, "refuse", tuple(sorted(dialects.parse_rules(self.refuse))))

    def runtime_settings(self) -> RuntimeSettings:
        return RuntimeSettings(
            self.speed,
            self.partial_percent,
            self.currency,
            dialect=self.dialect,
            refuse=frozenset(self.refuse),
        )


class DropConnection(Exception):
    """Raised by the app to close the socket without sending any answer."""


# --- requests and responses ---------------------------------------------------------------------


def _text(value: Any) -> str:
    """A JSON value as the string a form field would have carried."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple):
        return ",".join(_text(v) for v in value)  # "orders": [1, 2] -> "1,2"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _last_values(parsed: Mapping[str, list[str]]) -> dict[str, str]:
    # Like PHP's $_POST, a repeated field keeps its last value.
    return {name: values[-1] for name, values in parsed.items()}


def _parse_multipart(body: bytes, content_type: str) -> dict[str, str]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(EmailMessage, policy=HTTP_POLICY).parsebytes(head + body)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True)  # bytes (or None) for a form field
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            fields[str(name)] = text
    return fields


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environ(cls, environ: WsgiEnviron) -> Request:
        length = environ.get("CONTENT_LENGTH") or "0"
        size = min(int(length), MAX_BODY_BYTES) if length.isdigit() else 0
        body = environ["wsgi.input"].read(size) if size else b""
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        headers = {k[5:].lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        return cls(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=environ.get("PATH_INFO", "") or "/",
            query=_last_values(query),
            body=body,
            content_type=environ.get("CONTENT_TYPE", ""),
            headers=headers,
        )

    @property
    def media_type(self) -> str:
        return self.content_type.split(";")[0].strip().lower()

    def json_body(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8")) if self.body else None
        except (UnicodeDecodeError, ValueError):
            return None

    def body_fields(self) -> dict[str, str]:
        if not self.body:
            return {}
        if self.media_type == "application/json":
            data = self.json_body()
            return {str(k): _text(v) for k, v in data.items()} if isinstance(data, dict) else {}
        if self.media_type == "multipart/form-data":
            return _parse_multipart(self.body, self.content_type)
        # Form-encoded, or a client that forgot the content type: read it as a form.
        text = self.body.decode("utf-8", "replace")
        return _last_values(parse_qs(text, keep_blank_values=True))

    def params(self) -> dict[str, str]:
        """All fields, as strings: the query string, overridden by the body."""
        return {**self.query, **self.body_fields()}

    def data(self) -> dict[str, Any]:
        """A control request's fields: a JSON object keeps its types, anything else is a form."""
        body = self.json_body() if self.media_type == "application/json" else None
        return {**self.query, **body} if isinstance(body, dict) else self.params()


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    extra_headers: tuple[tuple[str, str], ...] = ()

    @property
    def status_line(self) -> str:
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:  # e.g. Cloudflare's 520-526
            phrase = "Unknown"
        return f"{self.status} {phrase}"

    def headers(self) -> list[tuple[str, str]]:
        return [("Content-Type", self.content_type), *self.extra_headers]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data).encode())


def html_response(text: str, status: int, server: str) -> Response:
    return Response(status, text.encode(), "text/html; charset=UTF-8", (("Server", server),))


# --- the app ------------------------------------------------------------------------------------


class SandboxApp:
    """The WSGI application: routes requests to the API or the control API."""

    def __init__(self, config: SandboxConfig, store: Store, catalog: Catalog) -> None:
        self.config = config
        self.store = store
        self.catalog = catalog
        self.settings = config.runtime_settings()
        self.api = Api(store, catalog, self.settings, frozenset(config.keys))
        self.faults = fl.FaultBoard()
        self.stop_event = threading.Event()
        self.base_url = ""  # set by the server once the port is known
        for spec in config.faults:
            self.faults.add(spec)

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        request = Request.from_environ(environ)
        response = self.route(request)
        start_response(response.status_line, response.headers())
        return [response.body]

    def route(self, request: Request) -> Response:
        if request.path.rstrip("/") == API_PATH:
            return self.handle_api(request)
        if request.path.startswith(CONTROL_PREFIX):
            return self.handle_control(request)
        if request.path == "/":
            return json_response(self.describe())
        return json_response({"error": "Not found"}, 404)

    def describe(self) -> dict[str, Any]:
        return {
            "name": "SMM panel sandbox provider",
            "api_url": self.base_url + API_PATH,
            "services": len(self.catalog),
            "speed": self.settings.speed,
            "docs": "docs/sandbox.md",
        }

    def sleep(self, seconds: float) -> None:
        self.stop_event.wait(seconds)

    # --- the provider API -----------------------------------------------------------------------

    def handle_api(self, request: Request) -> Response:
        if request.method not in ("GET", "POST"):
            return json_response({"error": "Method not allowed"}, 405)
        params = request.params()
        fault = self.faults.take(params.get("action", ""))
        if fault is not None and fault.mode not in fl.CARRIED_OUT:
            return self._refuse(request, params, fault)
        return self._carry_out(request, params, fault)

    def _carry_out(
        self, request: Request, params: dict[str, str], fault: fl.Fault | None
    ) -> Response:
        """Answer the request, bent by a fault that still lets it happen (slow, timeout...)."""
        mode = fault.mode if fault else None
        if fault is not None and mode == fl.SLOW:
            self.sleep(fault.seconds if fault.seconds is not None else fl.DEFAULT_SLOW_SECONDS)
            if self.stop_event.is_set():
                raise DropConnection  # stopped while waiting: the state file is closed
        response, outcome, order_id = self._answer(params)
        if fault is not None and mode == fl.INVALID_JSON:
            broken = fault.body.encode() if fault.body else fl.PHP_NOTICE.encode() + response.body
            response = Response(200, broken)
        if mode == fl.NUL_TEXT:
            response = json_response(fl.with_nul_text(json.loads(response.body)), response.status)
        # Logged before the late answer or the dropped socket: the log shows what really
        # happened upstream, whatever the client ends up seeing.
        self._log(request, params, outcome, response.status, order_id, fault)
        if fault is not None and mode == fl.TIMEOUT:
            self.sleep(fault.seconds if fault.seconds is not None else self.config.timeout_seconds)
        if mode == fl.DROP_AFTER_ACCEPT:
            raise DropConnection
        return response

    def _refuse(self, request: Request, params: dict[str, str], fault: fl.Fault) -> Response:
        """Answer for a fault that stops the request before it is carried out."""
        response = self._refusal(fault)
        self._log(request, params, f"fault: {fault.mode}", response.status, None, fault)
        if fault.mode == fl.DROP:
            raise DropConnection
        return response

    def _answer(self, params: dict[str, str]) -> tuple[Response, str, int | None]:
        try:
            answer, order_id = self.api.handle(params)
        except ApiError as exc:
            return json_response({"error": exc.message}), f"error: {exc.message}", None
        return json_response(answer), "ok", order_id

    def _refusal(self, fault: fl.Fault) -> Response:
        if fault.mode == fl.HTTP500:
            status = fault.status or 500
            page = fault.body or fl.HTTP_ERROR_PAGES.get(status, fl.HTTP_ERROR_PAGES[500])
            return html_response(page, status, "nginx")
        if fault.mode == fl.HTML:
            return html_response(
                fault.body or fl.CLOUDFLARE_HTML, fault.status or 200, "cloudflare"
            )
        if fault.mode == fl.ERROR:
            return json_response({"error": fl.error_message(fault)})
        return Response(200, b"")  # DROP: never sent

    def _log(
        self,
        request: Request,
        params: dict[str, str],
        outcome: str,
        status: int | None,
        order_id: int | None,
        fault: fl.Fault | None,
    ) -> None:
        # The key is a secret even in a sandbox: never store it.
        logged = {k: v for k, v in params.items() if k != "key"}
        self.store.log_request(
            method=request.method,
            path=request.path,
            action=params.get("action", ""),
            params=logged,
            outcome=outcome,
            http_status=None if fault and fault.mode in (fl.DROP, fl.DROP_AFTER_ACCEPT) else status,
            order_id=order_id,
            fault=fault.mode if fault else None,
        )

    # --- the control API ------------------------------------------------------------------------

    def _control_key_ok(self, request: Request, data: Mapping[str, Any]) -> bool:
        given = request.headers.get("x_sandbox_key") or data.get("key") or ""
        if self.config.control_key is not None:
            return given == self.config.control_key
        return given in self.config.keys

    def handle_control(self, request: Request) -> Response:
        route = request.path[len(CONTROL_PREFIX) :].strip("/")
        if route == "health":
            return json_response({"ok": True, **self.describe()})
        data = request.data()
        if not self._control_key_ok(request, data):
            return json_response({"error": "Invalid control key"}, 403)
        data.pop("key", None)
        if request.method == "DELETE" and route.startswith("faults/"):
            return self.control_delete_fault(route.removeprefix("faults/"))
        routes: dict[tuple[str, str], Callable[[dict[str, Any]], Response]] = {
            ("GET", "faults"): self.control_get_faults,
            ("POST", "faults"): self.control_post_faults,
            ("DELETE", "faults"): self.control_delete_faults,
            ("GET", "log"): self.control_get_log,
            ("GET", "orders"): self.control_get_orders,
            ("POST", "reset"): self.control_post_reset,
            ("GET", "balance"): self.control_get_balance,
            ("POST", "balance"): self.control_post_balance,
            ("GET", "config"): self.control_get_config,
            ("POST", "config"): self.control_post_config,
        }
        handler = routes.get((request.method, route))
        if handler is None:
            known = {path for _, path in routes}
            status = 405 if route in known else 404
            return json_response({"error": HTTPStatus(status).phrase}, status)
        return handler(data)

    def control_get_faults(self, data: Mapping[str, Any]) -> Response:
        return json_response({"faults": self.faults.list()})

    def control_post_faults(self, data: Mapping[str, Any]) -> Response:
        try:
            fault = self.faults.add(data)
        except fl.FaultSpecError as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({"fault": fault.to_dict()}, 201)

    def control_delete_faults(self, data: Mapping[str, Any]) -> Response:
        self.faults.clear()
        return json_response({"faults": []})

    def control_delete_fault(self, fault_id: str) -> Response:
        if fault_id.isdigit() and self.faults.remove(int(fault_id)):
            return json_response({"deleted": int(fault_id)})
        return json_response({"error": "Fault not found"}, 404)

    def control_get_log(self, data: Mapping[str, Any]) -> Response:
        since, limit = str(data.get("since", "0")), str(data.get("limit", "1000"))
        if not (since.isdigit() and limit.isdigit()):
            return json_response({"error": "since and limit must be numbers"}, 400)
        entries = self.store.read_log(
            action=data.get("action") or None, since=int(since), limit=int(limit)
        )
        return json_response({"requests": entries})

    def control_get_orders(self, data: Mapping[str, Any]) -> Response:
        orders = self.store.list_orders()
        if data.get("link"):
            orders = [o for o in orders if o["link"] == data["link"]]
        return json_response({"orders": orders})

    def control_post_reset(self, data: Mapping[str, Any]) -> Response:
        self.store.reset()
        self.faults.clear()
        start = self.config.runtime_settings()
        self.settings.speed = start.speed
        self.settings.partial_percent = start.partial_percent
        self.settings.currency = start.currency
        self.settings.dialect, self.settings.refuse = start.dialect, start.refuse
        return json_response({"reset": True})

    def _balance_answer(self) -> Response:
        amount = format_money(self.store.balance())
        return json_response({"balance": amount, "currency": self.settings.currency})

    def control_get_balance(self, data: Mapping[str, Any]) -> Response:
        return self._balance_answer()

    def control_post_balance(self, data: Mapping[str, Any]) -> Response:
        try:
            amount = Decimal(str(data.get("balance")))
        except InvalidOperation:
            return json_response({"error": "balance must be a decimal number"}, 400)
        if not amount.is_finite() or amount < 0:
            return json_response({"error": "balance must be zero or more"}, 400)
        self.store.set_balance(amount)
        if data.get("currency"):
            self.settings.currency = str(data["currency"])
        return self._balance_answer()

    def _settings_answer(self) -> Response:
        return json_response(
            {
                "speed": self.settings.speed,
                "partial_percent": self.settings.partial_percent,
                "currency": self.settings.currency,
                "services": len(self.catalog),
                "timeout_seconds": self.config.timeout_seconds,
                "dialect": self.settings.dialect,
                "refuse": sorted(self.settings.refuse),
            }
        )

    def control_get_config(self, data: Mapping[str, Any]) -> Response:
        return self._settings_answer()

    def control_post_config(self, data: Mapping[str, Any]) -> Response:
        try:
            speed = float(data.get("speed", self.settings.speed))
            percent = int(data.get("partial_percent", self.settings.partial_percent))
        except (TypeError, ValueError):
            return json_response({"error": "speed and partial_percent must be numbers"}, 400)
        if speed < 0 or not 0 <= percent <= 100:
            return json_response({"error": "speed >= 0 and 0 <= partial_percent <= 100"}, 400)
        try:
            dialect = dialects.get_dialect(str(data.get("dialect", self.settings.dialect))).name
            refuse = dialects.parse_rules(data["refuse"]) if "refuse" in data else None
        except dialects.DialectError as exc:
            return json_response({"error": str(exc)}, 400)
        self.settings.speed, self.settings.partial_percent = speed, percent
        self.settings.dialect = dialect
        if refuse is not None:
            self.settings.refuse = refuse
        if data.get("currency"):
            self.settings.currency = str(data["currency"])
        return self._settings_answer()


# --- the HTTP server ----------------------------------------------------------------------------


class _ServerHandler(simple_server.ServerHandler):
    # HTTP/1.1 answers (with their Content-Length) let a client keep its connection open
    # across calls, as the providers' web servers do (keep-alive).
    http_version = "1.1"
    keep_alive = False  # set per request by _RequestHandler
    # Set by wsgiref's BaseHandler (not in typeshed's stubs).
    headers: Headers
    headers_sent: bool

    kept_alive = False  # after run(): the answer went out whole with its length

    def cleanup_headers(self) -> None:
        super().cleanup_headers()
        if not self.keep_alive:
            self.headers["Connection"] = "close"

    def close(self) -> None:
        # Read before BaseHandler.close() forgets the headers. A dropped connection (nothing
        # sent) or an answer without a length ends the connection.
        self.kept_alive = self.keep_alive and self.headers_sent and "Content-Length" in self.headers
        super().close()

    def handle_error(self) -> None:
        if isinstance(sys.exc_info()[1], DropConnection):
            # Write nothing: the request handler then closes the socket, and the client sees
            # the connection end without an answer.
            return
        super().handle_error()


class _RequestHandler(simple_server.WSGIRequestHandler):
    """One connection: its requests one after another while the client keeps it open."""

    server: SandboxHTTPServer
    protocol_version = "HTTP/1.1"  # parse_request then honours keep-alive
    timeout = KEEP_ALIVE_SECONDS  # an idle kept-alive connection is closed after this
    # TCP_NODELAY, as web servers set it: wsgiref writes an answer's status line, headers and
    # body in separate sends, and on a kept-alive connection Nagle's algorithm held each later
    # send until the client's delayed ACK (40 ms on Linux): every call after the first waited
    # that long (bench/status_sweep.py: 52 ms a batch, of which 13 ms was work).
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.count_connection()

    def handle(self) -> None:
        """WSGIRequestHandler.handle for each request of the connection, with our
        ServerHandler so the app can drop a connection."""
        self.close_connection = True
        self._handle_one()
        while not self.close_connection:
            self._handle_one()

    def _handle_one(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except OSError:  # idle past KEEP_ALIVE_SECONDS, or reset by the client
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.requestline, self.request_version, self.command = "", "", ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        # typeshed types the socket's write file as BufferedIOBase, wsgiref wants an IO[bytes].
        wfile = cast(IO[bytes], self.wfile)
        handler = _ServerHandler(
            self.rfile, wfile, self.get_stderr(), self.get_environ(), multithread=True
        )
        handler.keep_alive = self._may_keep_alive()
        # A back-pointer for logging, as wsgiref's own WSGIRequestHandler sets (not in the stubs).
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.app)
        if not handler.kept_alive:
            self.close_connection = True

    def _may_keep_alive(self) -> bool:
        """The connection can serve another request after this one: the client asked for
        HTTP/1.1 without `Connection: close`, and the app reads this request's whole body."""
        if self.close_connection or self.request_version != "HTTP/1.1":
            return False
        if "Transfer-Encoding" in self.headers:
            return False
        length = self.headers.get("Content-Length", "0")
        return length.isdigit() and int(length) <= MAX_BODY_BYTES

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


class SandboxHTTPServer(ThreadingMixIn, simple_server.WSGIServer):
    """wsgiref's server, one thread per request, that stops without waiting for sleepers."""

    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 makes a burst of concurrent clients (race tests,
    # benchmarks) wait a whole SYN retransmit (1 s) for a connection.
    request_queue_size = 128
    quiet = False
    app: SandboxApp
    connections = 0  # TCP connections accepted so far (a client that keeps one alive: 1)
    _count_lock = threading.Lock()

    def count_connection(self) -> None:
        with self._count_lock:
            self.connections += 1

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can take seconds on a
        # machine without a resolver. Loopback needs no name.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()

    @property
    def port(self) -> int:
        return self.server_port

    @property
    def base_url(self) -> str:
        return f"http://{self.server_name}:{self.server_port}"

    @property
    def api_url(self) -> str:
        return self.base_url + API_PATH

    def close(self) -> None:
        """Wake sleeping fault threads, close the socket and the state file."""
        self.app.stop_event.set()
        self.server_close()
        self.app.store.close()


def make_server(
    config: SandboxConfig, *, clock: Callable[[], float] = time.time
) -> SandboxHTTPServer:
    """Bind the socket and open the state; call ``serve_forever()`` on the result."""
    server = SandboxHTTPServer((config.host, config.port), _RequestHandler)
    try:
        store = Store(config.db_path, start_balance=config.balance, clock=clock)
        app = SandboxApp(config, store, Catalog(config.services))
    except BaseException:
        server.server_close()
        raise
    if config.reset_state:
        store.reset()
    app.base_url = server.base_url
    server.app = app
    server.quiet = config.quiet
    server.set_app(app)
    return server


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    db_path: str = DEFAULT_DB,
    *,
    ready: Callable[[SandboxHTTPServer], None] | None = None,
    **options: Any,
) -> None:
    """Run the sandbox provider until interrupted. `options` are SandboxConfig fields.

    `ready` is called with the bound server before serving (e.g. to print the chosen port).
    """
    config = SandboxConfig(host=host, port=port, db_path=str(db_path), **options)
    server = make_server(config)
    if ready is not None:
        ready(server)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
