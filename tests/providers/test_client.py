"""ApiV2Client over real sockets: a tiny http.server on 127.0.0.1 plays the upstream provider,
serving the seed documents' example answers, the ways real providers stray from them, and
network failures (refused, read timeout, dropped connection, truncated or oversized bodies).
No database, no outside network."""

import json
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

from providers.client import (
    MAX_IDS,
    ApiV2Client,
    ErrorKind,
    ProviderError,
    api_error,
    transport_error,
)
from providers.schemas import (
    Balance,
    CancelResult,
    CancelStatus,
    ItemError,
    OrderStatus,
    RefillStatus,
    RequestStatus,
    UpstreamService,
    UpstreamStatus,
)

FIXTURES = Path(__file__).parent / "fixtures"
PROVIDERS = ["helposmm", "hmsocialmedia", "heysmmprovider", "smmsend", "smmcloud"]
API_KEY = "test-api-key-0123456789"


# --- the fake upstream --------------------------------------------------------------------------


@dataclass
class Reply:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    # normal | drop (close without answering) | sleep (answer after `delay`) | cut (close mid-body)
    # | chunked (stream `body` in `chunks` pieces, `delay` apart, without Content-Length)
    mode: str = "normal"
    delay: float = 0.0
    chunks: int = 1


class FakeUpstream:
    """Answers each POST with the next queued Reply and records what the client sent."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each answer waits ~40 ms for a delayed ACK

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length).decode()
                upstream.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "form": {k: v[0] for k, v in parse_qs(raw).items()},
                    }
                )
                reply = upstream.replies.popleft() if upstream.replies else Reply(status=599)
                upstream.serve(self, reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, client_address: None  # client went away
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v2"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def reply(self, body: Any = b"", **kwargs: Any) -> None:
        if not isinstance(body, bytes):
            body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.replies.append(Reply(body=body, **kwargs))

    def reply_fixture(self, name: str, **kwargs: Any) -> None:
        self.reply((FIXTURES / name).read_bytes(), **kwargs)

    def serve(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.mode == "drop":
            handler.close_connection = True
            return
        if reply.mode == "sleep" and self.stopping.wait(reply.delay):
            return
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        if reply.mode == "chunked":
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            size = max(1, len(reply.body) // reply.chunks)
            for start in range(0, len(reply.body), size):
                piece = reply.body[start : start + size]
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                handler.wfile.flush()
                if reply.delay and self.stopping.wait(reply.delay):
                    return
            handler.wfile.write(b"0\r\n\r\n")
            return
        declared = len(reply.body) * (10 if reply.mode == "cut" else 1)
        handler.send_header("Content-Length", str(declared))
        handler.end_headers()
        handler.wfile.write(reply.body)
        if reply.mode == "cut":
            handler.close_connection = True

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    server = FakeUpstream()
    yield server
    server.close()


@pytest.fixture
def client(upstream):
    with ApiV2Client(base_url=upstream.url, api_key=API_KEY, timeout=(1.0, 2.0)) as api:
        yield api


def raises(call, **expected: Any) -> ProviderError:
    """Call, expect a ProviderError, check the given attributes, return it."""
    with pytest.raises(ProviderError) as info:
        call()
    for name, value in expected.items():
        assert getattr(info.value, name) == value, (name, info.value)
    return info.value


# --- what goes over the wire --------------------------------------------------------------------


def test_add_order_posts_form_with_key_action_and_params(upstream, client):
    upstream.reply_fixture("helposmm/add_ok.json")

    order_id = client.add_order(
        service=1, params={"link": "https://instagram.com/p/x", "quantity": 100, "runs": 2}
    )

    assert order_id == "23501"
    (sent,) = upstream.requests
    assert sent["path"] == "/api/v2"
    assert sent["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent["headers"]["User-Agent"] == "smm-panel/1.0"
    assert sent["form"] == {
        "key": API_KEY,
        "action": "add",
        "service": "1",
        "link": "https://instagram.com/p/x",
        "quantity": "100",
        "runs": "2",
    }


def test_custom_user_agent_and_session(upstream):
    session = requests.Session()
    api = ApiV2Client(base_url=upstream.url, api_key=API_KEY, user_agent="ua/2", session=session)
    upstream.reply_fixture("smmsend/balance_ok.json")

    assert api.balance() == Balance(Decimal("100.84292"), "USD")
    assert upstream.requests[0]["headers"]["User-Agent"] == "ua/2"
    assert upstream.requests[0]["form"] == {"key": API_KEY, "action": "balance"}
    api.close()  # a session passed in belongs to the caller
    assert session.adapters


def test_multi_calls_send_comma_separated_ids(upstream, client):
    upstream.reply_fixture("smmsend/status_multi.json")
    upstream.reply_fixture("smmsend/refill_multi.json")
    upstream.reply_fixture("smmsend/refill_status_multi.json")
    upstream.reply_fixture("smmsend/cancel_multi.json")
    upstream.reply_fixture("smmsend/cancel_status_multi.json")

    client.statuses(["1", "10", "100"])
    client.refills(["1", "2", "3"])
    client.refill_statuses(["1", "2", "3"])
    client.cancel(["1", "10", "100", "1000"])
    client.cancel_statuses(["1", "2", "3"])

    forms = [r["form"] for r in upstream.requests]
    assert forms[0] == {"key": API_KEY, "action": "status", "orders": "1,10,100"}
    assert forms[1] == {"key": API_KEY, "action": "refill", "orders": "1,2,3"}
    assert forms[2] == {"key": API_KEY, "action": "refill_status", "refills": "1,2,3"}
    assert forms[3] == {"key": API_KEY, "action": "cancel", "orders": "1,10,100,1000"}
    assert forms[4] == {"key": API_KEY, "action": "cancel", "cancels": "1,2,3"}


def test_single_calls_send_one_id(upstream, client):
    upstream.reply_fixture("helposmm/status_ok.json")
    upstream.reply_fixture("helposmm/refill_ok.json")
    upstream.reply_fixture("helposmm/refill_status_ok.json")

    client.status("23501")
    client.refill("23501")
    client.refill_status("1")

    forms = [r["form"] for r in upstream.requests]
    assert forms[0] == {"key": API_KEY, "action": "status", "order": "23501"}
    assert forms[1] == {"key": API_KEY, "action": "refill", "order": "23501"}
    assert forms[2] == {"key": API_KEY, "action": "refill_status", "refill": "1"}


def test_multi_id_limits(upstream, client):
    with pytest.raises(ValueError, match="at most 100"):
        client.statuses([str(n) for n in range(1, MAX_IDS + 2)])
    with pytest.raises(TypeError):
        client.statuses("123")
    with pytest.raises(ValueError):
        client.refills(["1,2"])
    assert client.cancel([]) == {}
    assert upstream.requests == []


def test_add_order_rejects_reserved_or_odd_params(upstream, client):
    with pytest.raises(ValueError):
        client.add_order(service=1, params={"key": "other"})
    with pytest.raises(ValueError):
        client.add_order(service=1, params={"quantity": True})
    assert upstream.requests == []


def test_constructor_validates_base_url_and_key():
    with pytest.raises(ValueError):
        ApiV2Client(base_url="ftp://example.com/api/v2", api_key=API_KEY)
    with pytest.raises(ValueError):
        ApiV2Client(base_url="http://127.0.0.1/api/v2", api_key="")
    assert API_KEY not in repr(ApiV2Client(base_url="http://127.0.0.1/api/v2", api_key=API_KEY))


# --- every seed dialect over HTTP ---------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_services_over_http(upstream, client, provider):
    upstream.reply_fixture(f"{provider}/services_ok.json")

    services = client.services()

    assert [s.service_id for s in services] == ["1", "2"]
    assert all(isinstance(s, UpstreamService) for s in services)
    assert services[0].rate == Decimal("0.90")
    assert client.last_skipped == services.skipped == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_add_status_and_balance_over_http(upstream, client, provider):
    upstream.reply_fixture(f"{provider}/add_ok.json")
    upstream.reply_fixture(f"{provider}/status_multi.json")
    upstream.reply_fixture(f"{provider}/balance_ok.json")

    assert client.add_order(service="1", params={"link": "x", "quantity": 10}) == "23501"
    result = client.statuses(["1", "10", "100"])
    assert result["1"] == OrderStatus(
        UpstreamStatus.PARTIAL, "Partial", Decimal("0.27819"), 3572, 157, "USD"
    )
    assert result["10"] == ItemError("Incorrect order ID")
    assert result["100"].status is UpstreamStatus.IN_PROGRESS
    assert client.balance() == Balance(Decimal("100.84292"), "USD")


@pytest.mark.parametrize("provider", ["helposmm", "hmsocialmedia", "heysmmprovider", "smmcloud"])
def test_single_status_refill_and_refill_status_over_http(upstream, client, provider):
    upstream.reply_fixture(f"{provider}/status_ok.json")
    upstream.reply_fixture(f"{provider}/refill_ok.json")
    upstream.reply_fixture(f"{provider}/refill_status_ok.json")

    assert client.status("1").remains == 157
    assert client.refill("1") == "1"
    assert client.refill_status("1") == RefillStatus(RequestStatus.COMPLETED, "Completed")


@pytest.mark.parametrize("provider", ["hmsocialmedia", "heysmmprovider", "smmsend", "smmcloud"])
def test_multi_refill_and_refill_status_over_http(upstream, client, provider):
    upstream.reply_fixture(f"{provider}/refill_multi.json")
    upstream.reply_fixture(f"{provider}/refill_status_multi.json")

    assert client.refills([1, 2, 3]) == {"1": "1", "2": "2", "3": ItemError("Incorrect order ID")}
    assert client.refill_statuses(["1", "2", "3"]) == {
        "1": RefillStatus(RequestStatus.COMPLETED, "Completed"),
        "2": RefillStatus(RequestStatus.REJECTED, "Rejected"),
        "3": ItemError("Refill not found"),
    }


@pytest.mark.parametrize("provider", ["hmsocialmedia", "heysmmprovider", "smmcloud"])
def test_cancel_over_http(upstream, client, provider):
    upstream.reply_fixture(f"{provider}/cancel_multi.json")

    assert client.cancel(["9", "2"]) == {
        "9": ItemError("Incorrect order ID"),
        "2": CancelResult("1", None),
    }


def test_smmsend_cancel_and_cancel_statuses_over_http(upstream, client):
    upstream.reply_fixture("smmsend/cancel_multi.json")
    upstream.reply_fixture("smmsend/cancel_status_multi.json")

    cancels = client.cancel(["1", "10", "100", "1000"])
    assert [cancels[i] for i in ["1", "10", "100"]] == [
        CancelResult("100", "order"),
        CancelResult("200", "dripfeed"),
        CancelResult("300", "subscription"),
    ]
    assert cancels["1000"] == ItemError("Cancellation request was sent earlier")
    assert cancels["1000"].permanent
    assert client.cancel_statuses(["1", "2", "3"]) == {
        "1": CancelStatus(RequestStatus.COMPLETED, "Completed"),
        "2": CancelStatus(RequestStatus.REJECTED, "Rejected"),
        "3": ItemError("Cancel not found"),
    }


# --- off-spec answers over HTTP -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fixture",
    [
        "helposmm/add_order_id.json",
        "helposmm/add_data_order.json",
        "helposmm/add_data_order_id.json",
        "helposmm/add_bare_number.json",
        "helposmm/add_bare_string.json",
    ],
)
def test_add_order_id_variants(upstream, client, fixture):
    upstream.reply_fixture(fixture)
    assert client.add_order(service=1, params={"link": "x", "quantity": 10}) == "23501"


def test_status_quirks(upstream, client):
    upstream.reply_fixture("hmsocialmedia/status_capitalised_key.json")
    upstream.reply_fixture("heysmmprovider/status_negative_remains.json")
    upstream.reply_fixture("smmcloud/status_unknown.json")
    upstream.reply_fixture("smmcloud/status_missing_fields.json")
    upstream.reply_fixture("smmcloud/status_keyed_single.json")

    assert client.status("1").status is UpstreamStatus.IN_PROGRESS
    assert client.status("1").remains == -25
    unknown = client.status("1")
    assert (unknown.status, unknown.raw_status) == (UpstreamStatus.UNKNOWN, "Awaiting moderation")
    assert client.status("1") == OrderStatus(UpstreamStatus.PENDING, "Pending", *[None] * 4)
    assert client.status("23501").charge == Decimal("0.10")


def test_services_with_invalid_items_are_skipped_not_fatal(upstream, client, caplog):
    upstream.reply_fixture("smmsend/services_invalid_items.json")

    services = client.services()

    assert [s.name for s in services] == ["Good"]
    assert len(client.last_skipped) == 7
    assert client.last_skipped is services.skipped
    assert "skipped 7 unreadable upstream services" in caplog.text


def test_refill_status_type_instead_of_status(upstream, client):
    upstream.reply_fixture("smmsend/refill_status_type.json")
    assert client.refill_status("2").status == "Rejected"


# --- upstream errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "kind", "permanent"),
    [
        ("helposmm/add_error_funds.json", ErrorKind.INSUFFICIENT_FUNDS, False),
        ("smmcloud/add_error_insufficient_balance.json", ErrorKind.INSUFFICIENT_FUNDS, False),
        ("helposmm/add_error_link_duplicate.json", ErrorKind.API_ERROR, True),
        ("hmsocialmedia/add_error_incorrect_link.json", ErrorKind.API_ERROR, True),
        ("smmsend/add_error_min.json", ErrorKind.API_ERROR, True),
        ("heysmmprovider/add_error_unknown.json", ErrorKind.API_ERROR, False),
    ],
)
def test_add_error_bodies(upstream, client, fixture, kind, permanent):
    upstream.reply_fixture(fixture)

    exc = raises(
        lambda: client.add_order(service=1, params={"link": "x", "quantity": 10}),
        kind=kind,
        permanent=permanent,
        sent=True,
        outcome_unknown=False,
        action="add",
    )
    assert exc.message == json.loads((FIXTURES / fixture).read_text())["error"]
    assert exc.insufficient_funds is (kind is ErrorKind.INSUFFICIENT_FUNDS)


@pytest.mark.parametrize("fixture", ["hmsocialmedia/add_no_id.json", "smmsend/add_order_zero.json"])
def test_add_without_an_id_is_a_bad_answer_with_unknown_outcome(upstream, client, fixture):
    upstream.reply_fixture(fixture)
    raises(
        lambda: client.add_order(service=1, params={"link": "x", "quantity": 10}),
        kind=ErrorKind.BAD_ANSWER,
        permanent=False,
        sent=True,
        outcome_unknown=True,
    )


def test_single_call_error_bodies(upstream, client):
    upstream.reply_fixture("hmsocialmedia/status_error.json")
    upstream.reply_fixture("hmsocialmedia/refill_error.json")
    upstream.reply_fixture("heysmmprovider/refill_nested_error.json")
    upstream.reply_fixture("hmsocialmedia/refill_status_nested_error.json")
    upstream.reply_fixture("smmcloud/status_no_status.json")
    upstream.reply_fixture("heysmmprovider/balance_missing.json")

    raises(lambda: client.status("1"), kind=ErrorKind.API_ERROR, permanent=True)
    raises(lambda: client.refill("1"), kind=ErrorKind.API_ERROR, permanent=True)
    raises(lambda: client.refill("1"), message="Incorrect order ID", permanent=True)
    raises(lambda: client.refill_status("1"), message="Refill not found", permanent=True)
    raises(lambda: client.status("1"), kind=ErrorKind.BAD_ANSWER, permanent=False)
    raises(lambda: client.balance(), kind=ErrorKind.BAD_ANSWER)


def test_top_level_error_fails_a_multi_call(upstream, client):
    upstream.reply({"error": "Invalid API key"})
    raises(lambda: client.statuses(["1", "2"]), kind=ErrorKind.API_ERROR, permanent=True)


def test_json_error_body_with_an_http_error_status(upstream, client):
    upstream.reply({"error": "Incorrect service ID"}, status=400)
    raises(
        lambda: client.add_order(service=9, params={"link": "x", "quantity": 10}),
        kind=ErrorKind.API_ERROR,
        permanent=True,
        status_code=400,
        outcome_unknown=False,
    )


# --- HTTP-level failures ------------------------------------------------------------------------


def test_http_5xx_is_transient_and_outcome_unknown(upstream, client):
    upstream.reply(b"Internal Server Error", status=500, headers={"Content-Type": "text/plain"})
    exc = raises(
        lambda: client.add_order(service=1, params={"link": "x", "quantity": 10}),
        kind=ErrorKind.HTTP_ERROR,
        permanent=False,
        sent=True,
        status_code=500,
        outcome_unknown=True,
    )
    assert "Internal Server Error" in exc.message


def test_http_5xx_with_a_json_error_body_is_still_an_http_error(upstream, client):
    upstream.reply({"error": "Incorrect link"}, status=500)
    exc = raises(
        lambda: client.add_order(service=1, params={"link": "x", "quantity": 10}),
        kind=ErrorKind.HTTP_ERROR,
        permanent=False,
        outcome_unknown=True,
    )
    assert "Incorrect link" in exc.message


def test_http_503_html_page_is_an_http_error(upstream, client):
    upstream.reply_fixture("smmcloud/status_cloudflare.html", status=503, headers={})
    exc = raises(lambda: client.status("1"), kind=ErrorKind.HTTP_ERROR, permanent=False)
    assert "Just a moment..." in exc.message


def test_http_4xx_is_permanent_and_not_an_accepted_order(upstream, client):
    upstream.reply(b"Not Found", status=404, headers={})
    raises(
        lambda: client.add_order(service=1, params={"link": "x", "quantity": 10}),
        kind=ErrorKind.HTTP_ERROR,
        permanent=True,
        outcome_unknown=False,
    )


def test_redirect_is_not_followed(upstream, client):
    upstream.reply(b"", status=302, headers={"Location": "https://elsewhere.example/api/v2"})
    exc = raises(lambda: client.balance(), kind=ErrorKind.HTTP_ERROR, permanent=True)
    assert "elsewhere.example" in exc.message
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("header", "expected"), [("7", 7.0), ("0.5", 0.5), ("soon", None), (None, None)]
)
def test_http_429_with_retry_after_seconds(upstream, client, header, expected):
    headers = {"Retry-After": header} if header else {}
    upstream.reply({"error": "Too many requests"}, status=429, headers=headers)
    raises(
        lambda: client.statuses(["1"]),
        kind=ErrorKind.RATE_LIMITED,
        permanent=False,
        retry_after=expected,
        status_code=429,
        outcome_unknown=False,
    )


@pytest.mark.parametrize("usegmt", [True, False])
def test_http_429_with_retry_after_date(upstream, client, usegmt):
    date = formatdate(time.time() + 30, usegmt=usegmt)  # "... GMT" or "... -0000"
    upstream.reply(b"", status=429, headers={"Retry-After": date})
    exc = raises(lambda: client.balance(), kind=ErrorKind.RATE_LIMITED)
    assert 25 <= exc.retry_after <= 31


def test_html_page_instead_of_json(upstream, client):
    upstream.reply_fixture("smmcloud/status_cloudflare.html", headers={"Content-Type": "text/html"})
    exc = raises(lambda: client.status("1"), kind=ErrorKind.HTML, permanent=False, sent=True)
    assert "Just a moment..." in exc.message


def test_php_warning_before_the_json_is_html_with_unknown_outcome(upstream, client):
    upstream.reply_fixture("heysmmprovider/add_php_warning.html", headers={})
    raises(
        lambda: client.add_order(service=1, params={"link": "x", "quantity": 10}),
        kind=ErrorKind.HTML,
        outcome_unknown=True,
    )


@pytest.mark.parametrize("body", [b'[{"service": 1, "name": "Foll', b"", b"NaN", b"\xff\xfe{"])
def test_invalid_json(upstream, client, body):
    upstream.reply(body)
    raises(lambda: client.services(), kind=ErrorKind.INVALID_JSON, permanent=False, sent=True)


def test_truncated_services_fixture_is_invalid_json(upstream, client):
    upstream.reply_fixture("helposmm/services_truncated.txt")
    raises(lambda: client.services(), kind=ErrorKind.INVALID_JSON)


def test_unexpected_json_shape_is_a_bad_answer(upstream, client):
    upstream.reply({"services": "none"})
    upstream.reply([1, 2])
    upstream.reply(b'"plain string"')
    raises(lambda: client.services(), kind=ErrorKind.BAD_ANSWER, permanent=False)
    raises(lambda: client.balance(), kind=ErrorKind.BAD_ANSWER)
    raises(lambda: client.statuses(["1", "2"]), kind=ErrorKind.BAD_ANSWER)


def test_too_large_with_content_length(upstream):
    api = ApiV2Client(base_url=upstream.url, api_key=API_KEY, max_bytes=1000)
    upstream.reply(b"[" + b" " * 5000 + b"]")
    raises(lambda: api.services(), kind=ErrorKind.TOO_LARGE, sent=True)


def test_too_large_streamed_without_content_length(upstream):
    api = ApiV2Client(base_url=upstream.url, api_key=API_KEY, max_bytes=1000)
    upstream.reply(b"[" + b" " * 5000 + b"]", mode="chunked", chunks=10)
    raises(lambda: api.services(), kind=ErrorKind.TOO_LARGE, sent=True)


def test_chunked_answer_within_limits_is_read(upstream, client):
    upstream.reply_fixture("smmsend/services_ok.json", mode="chunked", chunks=5)
    assert len(client.services()) == 2


# --- network failures ---------------------------------------------------------------------------


def test_connection_refused_is_connect_and_never_sent():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    api = ApiV2Client(base_url=f"http://127.0.0.1:{port}/api/v2", api_key=API_KEY)

    exc = raises(
        lambda: api.add_order(service=1, params={"link": "x", "quantity": 10}),
        kind=ErrorKind.CONNECT,
        permanent=False,
        sent=False,
        outcome_unknown=False,
    )
    assert API_KEY not in exc.message


def test_read_timeout_is_timeout_with_unknown_delivery(upstream):
    api = ApiV2Client(base_url=upstream.url, api_key=API_KEY, timeout=(1.0, 0.2))
    upstream.reply_fixture("helposmm/add_ok.json", mode="sleep", delay=2.0)

    raises(
        lambda: api.add_order(service=1, params={"link": "x", "quantity": 10}),
        kind=ErrorKind.TIMEOUT,
        permanent=False,
        sent=None,
        outcome_unknown=True,
    )
    assert len(upstream.requests) == 1  # not retried behind our back


def test_dropped_connection_after_the_request_is_unknown_delivery(upstream, client):
    upstream.reply(mode="drop")
    raises(
        lambda: client.add_order(service=1, params={"link": "x", "quantity": 10}),
        kind=ErrorKind.TIMEOUT,
        sent=None,
        outcome_unknown=True,
    )
    assert len(upstream.requests) == 1


def test_body_cut_short_is_unknown_delivery(upstream, client):
    upstream.reply({"order": 23501}, mode="cut")
    raises(
        lambda: client.add_order(service=1, params={"link": "x", "quantity": 10}),
        kind=ErrorKind.TIMEOUT,
        sent=None,
    )


def test_slow_drip_hits_the_total_timeout(upstream):
    api = ApiV2Client(base_url=upstream.url, api_key=API_KEY, total_timeout=0.2)
    upstream.reply(b"[" + b" " * 40 + b"]", mode="chunked", chunks=40, delay=0.02)
    raises(lambda: api.services(), kind=ErrorKind.TIMEOUT, sent=None)


# transport_error() on exceptions that loopback cannot produce: DNS failure, connect timeout, TLS.


def _dns_failure() -> requests.ConnectionError:
    reason = NameResolutionError("nowhere.invalid", None, socket.gaierror(-2, "Name not known"))
    return requests.ConnectionError(MaxRetryError(None, "/api/v2", reason))


def _tls_error(cause: Exception) -> requests.exceptions.SSLError:
    from urllib3.exceptions import SSLError

    return requests.exceptions.SSLError(MaxRetryError(None, "/api/v2", SSLError(cause)))


@pytest.mark.parametrize(
    ("exc", "kind", "sent"),
    [
        (_dns_failure(), ErrorKind.CONNECT, False),
        (requests.ConnectTimeout("connect timed out"), ErrorKind.CONNECT, False),
        (
            requests.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "refused"))),
            ErrorKind.CONNECT,
            False,
        ),
        (_tls_error(ssl.SSLCertVerificationError("bad cert")), ErrorKind.CONNECT, False),
        (_tls_error(ssl.SSLError("bad record mac")), ErrorKind.TIMEOUT, None),
        (requests.ReadTimeout("read timed out"), ErrorKind.TIMEOUT, None),
        (requests.exceptions.ChunkedEncodingError("cut"), ErrorKind.TIMEOUT, None),
        (requests.ConnectionError(ConnectionResetError(104, "reset")), ErrorKind.TIMEOUT, None),
    ],
)
def test_transport_error_classification(exc, kind, sent):
    error = transport_error(exc, action="add")
    assert (error.kind, error.sent, error.permanent) == (kind, sent, False)
    assert error.outcome_unknown is (sent is None)


def test_api_error_classification():
    assert api_error("Not enough funds on balance").insufficient_funds
    assert api_error("Not enough funds on balance").permanent is False
    assert api_error("INCORRECT LINK format").permanent is True
    assert api_error("Service disabled").kind is ErrorKind.API_ERROR
    assert api_error("Temporary problem").permanent is False
