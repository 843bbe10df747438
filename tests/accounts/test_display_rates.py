"""The display currencies' rates from a configured source (DISPLAY_CURRENCY_RATES_URL), read
over real HTTP on loopback: all or nothing, and each failure says what is wrong."""

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from accounts.models import DisplayCurrency
from accounts.services import DisplayRatesError, display_currency_rates_update
from accounts.tasks import display_currency_rates_update_sweep

pytestmark = pytest.mark.django_db


class RatesSource:
    """A loopback server answering every GET with `body` (a dict as JSON, or raw bytes)."""

    def __init__(self):
        self.body: object = {}
        self.status = 200
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                raw = source.body if isinstance(source.body, bytes) else json.dumps(source.body)
                data = raw if isinstance(raw, bytes) else raw.encode()
                self.send_response(source.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/latest"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def source(settings):
    server = RatesSource()
    settings.DISPLAY_CURRENCY_RATES_URL = server.url
    yield server
    server.close()


@pytest.fixture
def currencies(db):
    DisplayCurrency.objects.create(code="EUR", rate=Decimal("0.9"))
    DisplayCurrency.objects.create(code="GBP", rate=Decimal("0.8"))
    DisplayCurrency.objects.create(code="TRY", rate=Decimal("30"), enabled=False)


def _rates() -> dict[str, Decimal]:
    return {c.code: c.rate for c in DisplayCurrency.objects.all()}


def test_rates_update_from_the_source(source, currencies):
    source.body = {"base": "USD", "rates": {"EUR": 0.9213, "GBP": 0.8, "JPY": 150.1}}
    assert display_currency_rates_update() == 1  # GBP unchanged; TRY disabled: not asked
    assert _rates() == {"EUR": Decimal("0.9213"), "GBP": Decimal("0.8"), "TRY": Decimal("30")}
    assert display_currency_rates_update_sweep() == "updated 0"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"base": "USD", "rates": {"EUR": 0.95}}, 200, "gives no rate for GBP"),
        ({"base": "EUR", "rates": {"EUR": 1, "GBP": 0.85}}, 200, "gives rates for EUR, not USD"),
        ({"base": "USD", "rates": {"EUR": "x", "GBP": 1}}, 200, "the rate of EUR is not a number"),
        ({"base": "USD", "rates": {"EUR": 0, "GBP": 1}}, 200, "the rate of EUR is not above zero"),
        ({"base": "USD"}, 200, 'has no "rates" object'),
        (b"<html>busy</html>", 200, "did not answer JSON"),
        ({"error": "quota"}, 503, "Could not read"),
    ],
)
def test_a_bad_source_changes_nothing_and_says_why(source, currencies, body, status, message):
    source.body, source.status = body, status
    with pytest.raises(DisplayRatesError, match=message):
        display_currency_rates_update()
    assert _rates() == {"EUR": Decimal("0.9"), "GBP": Decimal("0.8"), "TRY": Decimal("30")}


def test_without_a_source_the_task_does_nothing(settings, currencies):
    settings.DISPLAY_CURRENCY_RATES_URL = ""
    assert display_currency_rates_update_sweep().startswith("no source configured")
    with pytest.raises(DisplayRatesError, match="No DISPLAY_CURRENCY_RATES_URL"):
        display_currency_rates_update()


def test_an_unreachable_source_fails_the_task(settings, currencies):
    settings.DISPLAY_CURRENCY_RATES_URL = "http://127.0.0.1:9/rates"
    with pytest.raises(DisplayRatesError, match=r"Could not read http://127\.0\.0\.1:9/rates"):
        display_currency_rates_update_sweep()


def test_admin_action_updates_or_says_why(client, staff, source, currencies):
    client.force_login(staff)
    url = reverse("admin:accounts_displaycurrency_changelist")
    ids = [str(pk) for pk in DisplayCurrency.objects.values_list("pk", flat=True)]
    data = {"action": "update_rates_from_source", "_selected_action": ids}
    source.body = {"base": "USD", "rates": {"EUR": 0.91, "GBP": 0.79}}
    page = client.post(url, data, follow=True).content.decode()
    assert "2 rates changed." in page and _rates()["EUR"] == Decimal("0.91")
    source.body = {"base": "USD", "rates": {"EUR": 0.91}}
    page = client.post(url, data, follow=True).content.decode()
    assert "gives no rate for GBP" in page
