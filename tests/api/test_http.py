"""The API driven the way an outside reseller drives it: a plain HTTP client (requests) against
a live server, with form POST, JSON POST and GET, with and without the trailing slash."""

import gzip
import json

import pytest
import requests

from orders.models import Order
from tests.api.conftest import API_URL
from tests.api.factories import OrderFactory, ServiceFactory

pytestmark = pytest.mark.django_db(transaction=True)

PATHS = ["/api/v2", "/api/v2/"]


def send(url: str, mode: str, params: dict, **kwargs) -> requests.Response:
    if mode == "form":
        return requests.post(url, data=params, timeout=10, allow_redirects=False, **kwargs)
    if mode == "json":
        return requests.post(url, json=params, timeout=10, allow_redirects=False, **kwargs)
    return requests.get(url, params=params, timeout=10, allow_redirects=False, **kwargs)


def checked(response: requests.Response):
    assert response.status_code == 200, (response.status_code, response.text[:200])
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", ["form", "json", "get"])
def test_balance_every_way_a_client_sends_it(live_server, alice_key, path, mode):
    answer = checked(send(live_server.url + path, mode, {"key": alice_key, "action": "balance"}))
    assert answer == {"balance": "50.00000", "currency": "USD"}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", ["form", "json", "get"])
def test_add_then_status_every_way(live_server, alice, alice_key, path, mode):
    service = ServiceFactory(rate="2.00000000", dripfeed=False)
    # A JSON client sends numbers as numbers; the API reads them as the strings the form sends.
    quantity = 500 if mode == "json" else "500"
    params = {
        "key": alice_key,
        "action": "add",
        "service": service.pk,
        "link": "https://example.com/x",
        "quantity": quantity,
        "unknown_extra": "ignored",
    }
    answer = checked(send(live_server.url + path, mode, params))
    order = Order.objects.get(pk=answer["order"])
    assert (order.user_id, order.source, order.quantity) == (alice.pk, Order.Source.API, 500)
    status = checked(
        send(
            live_server.url + path, mode, {"key": alice_key, "action": "status", "order": order.pk}
        )
    )
    assert status["charge"] == "1.00000" and status["currency"] == "USD"
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == 49


def test_json_lists_of_ids_are_accepted(live_server, alice_key):
    answer = checked(
        send(
            live_server.url + "/api/v2",
            "json",
            {"key": alice_key, "action": "status", "orders": [5, 6]},
        )
    )
    assert answer == {"5": {"error": "Incorrect order ID"}, "6": {"error": "Incorrect order ID"}}


def test_key_in_the_query_string_and_action_in_the_body(live_server, alice_key):
    url = f"{live_server.url}/api/v2?key={alice_key}"
    assert "balance" in checked(requests.post(url, data={"action": "balance"}, timeout=10))


def test_no_csrf_token_is_needed_and_no_html_ever(live_server, alice_key):
    answer = checked(
        requests.post(
            live_server.url + "/api/v2",
            timeout=10,
            data={"key": alice_key, "action": "balance"},
            headers={"Accept": "text/html", "Cookie": "csrftoken=x"},
        )
    )
    assert "balance" in answer
    for method in ("put", "delete", "patch", "options"):
        answer = checked(requests.request(method, live_server.url + "/api/v2", timeout=10))
        assert "error" in answer


def test_gzip_only_when_the_client_allows_it(live_server, alice_key):
    for i in range(30):
        ServiceFactory(name=f"A service with a long enough name {i}")
    params = {"key": alice_key, "action": "services"}
    raw = requests.post(
        live_server.url + "/api/v2",
        data=params,
        timeout=10,
        stream=True,
        headers={"Accept-Encoding": "gzip"},
    )
    assert raw.headers["Content-Encoding"] == "gzip"
    assert len(gzip.decompress(raw.raw.read())) > 1000
    plain = requests.post(
        live_server.url + "/api/v2",
        data=params,
        timeout=10,
        headers={"Accept-Encoding": "identity"},
    )
    assert "Content-Encoding" not in plain.headers
    assert len(checked(plain)) == 30


def test_body_without_content_type(live_server, alice_key):
    body = f"key={alice_key}&action=balance".encode()
    response = requests.post(
        live_server.url + "/api/v2", data=body, timeout=10, headers={"Content-Type": ""}
    )
    assert "balance" in checked(response)


def _parallel(n: int, fn) -> list:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(fn, range(n)))


def test_concurrent_retries_with_one_idempotency_key_make_one_order(live_server, alice, alice_key):
    from accounts.models import LedgerEntry

    service = ServiceFactory(rate="10.00000000", dripfeed=False)
    params = {
        "key": alice_key,
        "action": "add",
        "service": service.pk,
        "link": "https://example.com/x",
        "quantity": "100",
    }

    def call(_):
        return checked(
            requests.post(
                live_server.url + "/api/v2",
                data=params,
                timeout=30,
                headers={"Idempotency-Key": "same-retry"},
            )
        )

    answers = _parallel(8, call)
    assert all("order" in a for a in answers), answers
    assert len({a["order"] for a in answers}) == 1
    assert LedgerEntry.objects.filter(user=alice, kind="charge").count() == 1


def test_concurrent_adds_never_overdraw(live_server, alice, alice_key):
    from accounts.selectors import ledger_find_mismatches

    service = ServiceFactory(rate="100.00000000", dripfeed=False)  # 10.00000 per order of 100
    params = {
        "key": alice_key,
        "action": "add",
        "service": service.pk,
        "link": "https://example.com/x",
        "quantity": "100",
    }

    def call(_):
        return checked(requests.post(live_server.url + "/api/v2", data=params, timeout=30))

    answers = _parallel(10, call)
    placed = [a for a in answers if "order" in a]
    assert len(placed) == 5  # alice has 50.00000
    assert all(a == {"error": "Not enough funds on balance."} for a in answers if "order" not in a)
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == 0
    assert ledger_find_mismatches() == []


def test_an_actions_answer_is_gzipped_at_level_1_only_for_a_client_that_accepts_it(
    client, alice, alice_key
):
    """An action's answer (here a 30-id `status`) is gzipped by the view at level 1
    (panel/api_v2.py _answer_gzipped_fast); a short one, and any for a client without gzip,
    goes as it is."""
    ids = ",".join(str(o.pk) for o in OrderFactory.create_batch(30, user=alice))
    params = {"key": alice_key, "action": "status", "orders": ids}
    zipped = client.post(API_URL, params, HTTP_ACCEPT_ENCODING="gzip, deflate")
    plain = client.post(API_URL, params, HTTP_ACCEPT_ENCODING="identity")
    assert zipped["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain
    assert gzip.decompress(zipped.content) == plain.content
    assert zipped.content[8] == 4  # the gzip header's XFL: the fastest level's mark (RFC 1952)
    assert len(json.loads(plain.content)) == 30
    for response in (zipped, plain):
        assert "Accept-Encoding" in response["Vary"]
        assert "no-store" in response["Cache-Control"]
    short = client.post(
        API_URL, {"key": alice_key, "action": "balance"}, HTTP_ACCEPT_ENCODING="gzip"
    )
    assert "Content-Encoding" not in short and json.loads(short.content)["currency"]
