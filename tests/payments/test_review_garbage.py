"""Review: a gateway answering garbage at the start of a payment. The customer is told the
method could not start the payment (nothing charged), the payment is marked failed: never a
server error with the payment left "created". A real HTTP server on loopback plays the
gateway, answering 200 with JSON that is not what the API documents."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from accounts.models import Payment

ANSWERS: dict[str, dict] = {
    # PayPal's OAuth answer with an expires_in that is not a number.
    "/v1/oauth2/token": {"access_token": "A21", "token_type": "Bearer", "expires_in": "soon"},
}


class _Garbage(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(ANSWERS.get(self.path, {"what": "garbage"})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def garbage_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_paypal_answering_a_token_without_a_numeric_lifetime_fails_the_payment_cleanly(
    garbage_server, client, alice, settings
):
    settings.PAYMENT_METHODS = ["paypal"]
    settings.PAYPAL_CLIENT_ID, settings.PAYPAL_CLIENT_SECRET = "id-garbage", "secret"
    settings.PAYPAL_API_BASE = garbage_server
    client.force_login(alice)
    answer = client.post("/funds/add/", {"method": "paypal", "amount": "10.00"})
    assert answer.status_code == 400
    assert "could not start the payment; nothing was charged" in answer.content.decode()
    assert Payment.objects.get(method="paypal").status == Payment.Status.FAILED
