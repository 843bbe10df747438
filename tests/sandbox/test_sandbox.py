"""The sandbox provider, spoken to over real HTTP on loopback.

Each test starts its own server on a free port with a temporary state file. Time is a fake
clock the test moves forward, so order progress is checked exactly and without sleeping;
one test runs on the real clock to show progress happens by itself.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from providers.sandbox import catalog as cat
from providers.sandbox.faults import FaultSpecError, build_fault, parse_cli_fault
from providers.sandbox.testing import SandboxControlError, SandboxProcess, SandboxServer

LINK = "https://instagram.com/p/sandbox-test"
CANCEL_DISABLED = "Cancel is disabled for this service"
FOLLOWERS = 1  # Default, rate 0.90, 50..10000, refill + cancel, no drip-feed
CHEAP_FOLLOWERS = 2  # Default, rate 0.35, 100..50000, no refill, no cancel, drip-feed
PACKAGE = 4  # Package, rate 2.5
CUSTOM_COMMENTS = 5  # rate 8, 10..1500
SUBSCRIPTION = 15  # rate 0.15, 50..5000
YOUTUBE_VIEWS = 16  # Default, refill + cancel + drip-feed, 500..1000000


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock):
    # speed 10: Pending for 1 s, delivering until 10 s, then final.
    with SandboxServer(speed=10, clock=clock) as server:
        yield server


def post(sandbox: SandboxServer, timeout: float = 5, **fields: Any) -> Any:
    response = requests.post(sandbox.url, data={"key": sandbox.key, **fields}, timeout=timeout)
    assert response.status_code == 200
    return response.json()


def add(sandbox: SandboxServer, service: int = FOLLOWERS, **fields: Any) -> Any:
    fields.setdefault("link", LINK)
    if service != SUBSCRIPTION:
        fields.setdefault("quantity", 100)
    return post(sandbox, action="add", service=service, **fields)


def status(sandbox: SandboxServer, order_id: int) -> dict[str, str]:
    return post(sandbox, action="status", order=order_id)


# --- protocol basics ----------------------------------------------------------------------------


def test_a_client_keeps_one_connection_for_many_requests(sandbox):
    assert sandbox.server is not None
    before = sandbox.server.connections
    with requests.Session() as session:
        for _ in range(3):
            answer = session.post(sandbox.url, data={"key": sandbox.key, "action": "balance"})
            assert answer.status_code == 200 and "balance" in answer.json()
            assert answer.raw.version == 11 and "close" not in answer.headers.get("Connection", "")
    assert sandbox.server.connections - before == 1


def test_answers_go_out_without_waiting_for_the_clients_ack(sandbox, monkeypatch):
    """TCP_NODELAY on each connection: wsgiref sends an answer's status line, headers and body
    separately, and with Nagle's algorithm each call after the first on a kept-alive connection
    waited for the client's delayed ACK (40 ms: bench/status_sweep.py's batches took 52 ms
    instead of 12)."""
    from providers.sandbox import server as sandbox_server

    seen: list[int] = []
    setup = sandbox_server._RequestHandler.setup

    def recording_setup(handler) -> None:
        setup(handler)
        seen.append(handler.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(sandbox_server._RequestHandler, "setup", recording_setup)
    with requests.Session() as session:
        for _ in range(2):
            assert (
                "balance"
                in session.post(sandbox.url, data={"key": sandbox.key, "action": "balance"}).json()
            )
    assert seen and all(seen), seen


def test_a_dropped_request_or_connection_close_ends_the_connection(sandbox):
    assert sandbox.server is not None
    sandbox.set_fault("drop", actions=["balance"], count=1)
    before = sandbox.server.connections  # the control call above had its own
    form = {"key": sandbox.key, "action": "balance"}
    with requests.Session() as session:
        with pytest.raises(requests.ConnectionError):
            session.post(sandbox.url, data=form)
        closing = session.post(sandbox.url, data=form, headers={"Connection": "close"})
        assert closing.status_code == 200 and closing.headers["Connection"] == "close"
        for _ in range(2):
            assert session.post(sandbox.url, data=form).status_code == 200
    # One connection for the dropped request, one for the request that asked to close it,
    # one for the last two.
    assert sandbox.server.connections - before == 3


def test_wrong_or_missing_key_is_an_api_error_with_http_200(sandbox):
    for data in ({"action": "balance"}, {"key": "nope", "action": "balance"}):
        response = requests.post(sandbox.url, data=data, timeout=5)
        assert response.status_code == 200
        assert response.json() == {"error": "Invalid API key"}


def test_unknown_action_is_an_incorrect_request(sandbox):
    assert post(sandbox, action="teleport") == {"error": "Incorrect request"}


def test_balance_answer_has_the_seed_shape(sandbox):
    assert post(sandbox, action="balance") == {"balance": "1000.00000", "currency": "USD"}


def test_requests_are_accepted_as_form_json_query_string_and_multipart(sandbox):
    fields = {"key": sandbox.key, "action": "balance"}
    answers = [
        requests.post(sandbox.url, data=fields, timeout=5),
        requests.post(sandbox.url + "/", data=fields, timeout=5),
        requests.post(sandbox.url, json=fields, timeout=5),
        requests.get(sandbox.url, params=fields, timeout=5),
        requests.post(sandbox.url, files={k: (None, v) for k, v in fields.items()}, timeout=5),
    ]
    assert [a.json()["balance"] for a in answers] == ["1000.00000"] * 5
    assert all(a.headers["Content-Type"].startswith("application/json") for a in answers)


def test_json_body_ids_may_be_numbers_or_lists(sandbox):
    order_id = add(sandbox)["order"]
    body = {"key": sandbox.key, "action": "status", "orders": [order_id, 7]}
    answer = requests.post(sandbox.url, json=body, timeout=5).json()
    assert set(answer) == {str(order_id), "7"}


# --- catalog ------------------------------------------------------------------------------------


def test_services_cover_every_order_type_in_the_seed_shapes(sandbox):
    services = post(sandbox, action="services")
    assert {s["type"] for s in services} == set(cat.ORDER_TYPES)
    for s in services:
        assert isinstance(s["service"], int)
        assert all(
            isinstance(s[k], str) for k in ("name", "type", "category", "rate", "min", "max")
        )
        assert all(isinstance(s[k], bool) for k in ("refill", "cancel", "dripfeed"))
        assert isinstance(s["desc"], str)
        assert len(s["rate"].partition(".")[2]) <= 5
        assert int(s["min"]) <= int(s["max"])
    assert any("<b>" in s["desc"] for s in services)
    assert any("\n" in s["desc"] for s in services)
    assert any(s["dripfeed"] for s in services) and any(not s["dripfeed"] for s in services)
    assert len({s["category"] for s in services}) >= 5


def test_demo_catalog_reads_like_a_provider_and_tests_get_the_hostile_texts():
    demo = " ".join(s.desc for s in cat.build_catalog())
    for test_text in ("on purpose", "<script", "alert(", "onerror", "javascript:"):
        assert test_text not in demo, test_text
    awkward = {s.service: s.desc for s in cat.build_catalog(awkward=True)}
    assert "<script>alert('sandbox')</script>" in awkward[3]
    assert "Non-ASCII in the name on purpose." in awkward[23]
    assert "An ampersand in the name on purpose" in awkward[24]
    assert "⚡" in cat.build_catalog()[22].name and "&" in cat.build_catalog()[23].name


def test_catalog_is_deterministic_and_grows_to_the_asked_size():
    big = cat.build_catalog(5000)
    assert big == cat.build_catalog(5000)
    assert len(big) == 5000
    assert [s.service for s in big] == list(range(1, 5001))
    extra = big[cat.BASE_SIZE :]
    assert {s.type for s in extra} == {cat.DEFAULT}
    assert all(Decimal(s.rate) > 0 and len(s.rate.partition(".")[2]) <= 5 for s in extra)
    assert len(cat.build_catalog(3)) == cat.BASE_SIZE  # never fewer than every type


def test_server_serves_a_padded_catalog(clock):
    with SandboxServer(clock=clock, services=300) as sandbox:
        assert len(post(sandbox, action="services")) == 300


# --- add ----------------------------------------------------------------------------------------


def test_add_answers_a_numeric_order_id_and_charges_rate_per_thousand(sandbox):
    answer = add(sandbox, quantity=1000)
    assert answer == {"order": 23501}
    assert status(sandbox, 23501)["charge"] == "0.90000"
    assert post(sandbox, action="balance")["balance"] == "999.10000"


def test_tiny_charges_are_rounded_to_five_decimals(sandbox):
    order_id = add(sandbox, service=19, quantity=100)["order"]  # rate 0.00125
    assert status(sandbox, order_id)["charge"] == "0.00013"


def test_add_takes_any_one_line_link_like_a_real_provider(sandbox):
    for link in ("instagram.com/p/x", "@channel", "https://x.com/a b"):
        assert "order" in add(sandbox, link=link), link


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"service": 999}, "Incorrect service ID"),
        ({"service": "abc"}, "Incorrect service ID"),
        ({"link": ""}, "Incorrect link"),
        ({"link": "https://x.com/a\tb"}, "Incorrect link"),
        ({"link": "https://x.com/" + "a" * 2048}, "Incorrect link"),
        ({"quantity": 49}, "Quantity less than minimal 50"),
        ({"quantity": 10001}, "Quantity more than maximal 10000"),
        ({"quantity": ""}, "Incorrect quantity"),
        ({"quantity": "1e3"}, "Incorrect quantity"),
        ({"runs": 2, "interval": 10}, "Drip-feed is not available for this service"),
    ],
)
def test_add_rejects_bad_input_like_a_real_provider(sandbox, fields, error):
    service = fields.pop("service", FOLLOWERS)
    assert add(sandbox, service=service, **fields) == {"error": error}
    assert sandbox.orders() == []


def _service_of_type(type_: str) -> int:
    return next(s.service for s in cat.build_catalog() if s.type == type_)


GOOD_FIELDS: dict[str, dict[str, Any]] = {
    cat.PACKAGE: {},
    cat.CUSTOM_COMMENTS: {"comments": "\n".join(f"nice {i}" for i in range(10))},
    cat.CUSTOM_COMMENTS_PACKAGE: {"comments": "great\r\nwow"},
    cat.MENTIONS_WITH_HASHTAGS: {"quantity": 100, "usernames": "a\nb", "hashtags": "#x\n#y"},
    cat.MENTIONS_CUSTOM_LIST: {"usernames": "\n".join(f"user{i}" for i in range(10))},
    cat.MENTIONS_HASHTAG: {"quantity": 100, "hashtag": "#sandbox"},
    cat.MENTIONS_USER_FOLLOWERS: {"quantity": 100, "username": "someone"},
    cat.MENTIONS_MEDIA_LIKERS: {"quantity": 100, "media": "https://instagram.com/p/m"},
    cat.COMMENT_LIKES: {"quantity": 20, "username": "comment.owner"},
    cat.COMMENT_REPLIES: {"username": "owner", "comments": "\n".join("r" * 5 for _ in range(5))},
    cat.POLL: {"quantity": 100, "answer_number": 2},
    cat.INVITES_FROM_GROUPS: {"quantity": 100, "groups": "https://t.me/a\nhttps://t.me/b"},
    cat.SUBSCRIPTIONS: {"username": "star", "min": 50, "max": 100, "delay": 30},
}

MISSING_FIELD_ERRORS: dict[str, tuple[str, str]] = {
    cat.CUSTOM_COMMENTS: ("comments", "Incorrect comments"),
    cat.CUSTOM_COMMENTS_PACKAGE: ("comments", "Incorrect comments"),
    cat.MENTIONS_WITH_HASHTAGS: ("hashtags", "Incorrect hashtags"),
    cat.MENTIONS_CUSTOM_LIST: ("usernames", "Incorrect usernames"),
    cat.MENTIONS_HASHTAG: ("hashtag", "Incorrect hashtag"),
    cat.MENTIONS_USER_FOLLOWERS: ("username", "Incorrect username"),
    cat.MENTIONS_MEDIA_LIKERS: ("media", "Incorrect media"),
    cat.COMMENT_LIKES: ("username", "Incorrect username"),
    cat.COMMENT_REPLIES: ("username", "Incorrect username"),
    cat.POLL: ("answer_number", "Incorrect answer number"),
    cat.INVITES_FROM_GROUPS: ("groups", "Incorrect groups"),
    cat.SUBSCRIPTIONS: ("delay", "Incorrect delay"),
}


@pytest.mark.parametrize("type_", sorted(GOOD_FIELDS))
def test_every_order_type_is_accepted_with_its_fields(sandbox, type_):
    fields = GOOD_FIELDS[type_]
    answer = post(sandbox, action="add", service=_service_of_type(type_), link=LINK, **fields)
    assert isinstance(answer.get("order"), int), answer
    [order] = sandbox.orders()
    assert order["type"] == type_


@pytest.mark.parametrize("type_", sorted(MISSING_FIELD_ERRORS))
def test_every_order_type_requires_its_fields(sandbox, type_):
    name, error = MISSING_FIELD_ERRORS[type_]
    fields = {k: v for k, v in GOOD_FIELDS[type_].items() if k != name}
    answer = post(sandbox, action="add", service=_service_of_type(type_), link=LINK, **fields)
    assert answer == {"error": error}


def test_custom_comments_quantity_is_the_number_of_lines(sandbox):
    comments = "\r\n".join(f"comment {i}" for i in range(12)) + "\n\n"
    order_id = add(sandbox, CUSTOM_COMMENTS, quantity=None, comments=comments)["order"]
    assert sandbox.orders()[0]["quantity"] == 12
    assert status(sandbox, order_id)["charge"] == "0.09600"  # 8 per 1000 x 12
    mismatch = add(sandbox, CUSTOM_COMMENTS, quantity=11, comments=comments)
    assert mismatch == {"error": "Quantity must equal the number of lines in comments"}
    too_few = add(sandbox, CUSTOM_COMMENTS, quantity=None, comments="one\ntwo")
    assert too_few == {"error": "Quantity less than minimal 10"}


def test_package_is_charged_once_whatever_the_quantity(sandbox):
    order_id = add(sandbox, PACKAGE, quantity=5000)["order"]
    assert status(sandbox, order_id)["charge"] == "2.50000"


def test_dripfeed_charges_every_run(sandbox):
    order_id = add(sandbox, CHEAP_FOLLOWERS, quantity=1000, runs=3, interval=15)["order"]
    assert status(sandbox, order_id)["charge"] == "1.05000"  # 0.35 x 3 runs
    [order] = sandbox.orders()
    assert (order["quantity"], order["runs"], order["interval"]) == (3000, 3, 15)
    assert add(sandbox, CHEAP_FOLLOWERS, runs=3) == {"error": "Incorrect interval"}
    assert add(sandbox, CHEAP_FOLLOWERS, runs=0, interval=5) == {"error": "Incorrect runs"}


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"delay": 7}, "Incorrect delay"),
        ({"min": 200, "max": 100}, "Incorrect max"),
        ({"min": 10}, "Quantity less than minimal 50"),
        ({"max": 6000}, "Quantity more than maximal 5000"),
        ({"expiry": "2030-01-31"}, "Incorrect expiry date"),
        ({"expiry": "31/02/2030"}, "Incorrect expiry date"),
        ({"posts": 0}, "Incorrect posts"),
        ({"username": ""}, "Incorrect username"),
    ],
)
def test_subscriptions_are_validated(sandbox, fields, error):
    good = {"username": "star", "min": 50, "max": 100, "delay": 30}
    assert add(sandbox, SUBSCRIPTION, link="", **{**good, **fields}) == {"error": error}


def test_subscription_is_charged_for_max_per_post(sandbox):
    fields = {"username": "star", "min": 50, "max": 1000, "delay": 20, "posts": 4}
    order_id = add(sandbox, SUBSCRIPTION, link="", expiry="31/12/2030", old_posts=1, **fields)
    assert status(sandbox, order_id["order"])["charge"] == "0.75000"  # 0.15 x 1000 x 5 posts


def test_not_enough_funds_creates_no_order(sandbox):
    sandbox.set_balance("0.05")
    assert add(sandbox, quantity=100) == {"error": "Not enough funds on balance"}
    assert sandbox.orders() == []
    assert post(sandbox, action="balance")["balance"] == "0.05000"


def test_concurrent_adds_never_spend_more_than_the_balance(clock):
    with SandboxServer(clock=clock, balance=Decimal("1.00")) as sandbox:
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda i: add(sandbox, quantity=100), range(30)))
        created = [a for a in answers if "order" in a]
        assert len(created) == 11  # 11 x 0.09 = 0.99
        assert len({a["order"] for a in created}) == 11
        assert post(sandbox, action="balance")["balance"] == "0.01000"


# --- status and progress ------------------------------------------------------------------------


def test_order_goes_pending_in_progress_completed_with_falling_remains(sandbox, clock):
    order_id = add(sandbox, quantity=1000)["order"]
    first = status(sandbox, order_id)
    assert first == {
        "charge": "0.90000",
        "start_count": "0",
        "status": "Pending",
        "remains": "1000",
        "currency": "USD",
    }
    clock.advance(5.5)  # halfway through delivery (1 s .. 10 s)
    middle = status(sandbox, order_id)
    assert middle["status"] == "In progress"
    assert middle["remains"] == "500"
    assert int(middle["start_count"]) > 0
    clock.advance(5)
    final = status(sandbox, order_id)
    assert (final["status"], final["remains"]) == ("Completed", "0")
    assert final["start_count"] == middle["start_count"]


def test_partial_marker_ends_partial_and_refunds_the_rest_once(sandbox, clock):
    order_id = add(sandbox, link=LINK + "-partial", quantity=300)["order"]  # charge 0.27
    clock.advance(11)
    for _ in range(2):  # asking twice must not refund twice
        answer = status(sandbox, order_id)
        assert (answer["status"], answer["remains"]) == ("Partial", "100")
    assert post(sandbox, action="balance")["balance"] == "999.82000"  # 1000 - 0.27 + 0.09


def test_partial_percent_ends_a_deterministic_share_partial(clock):
    with SandboxServer(clock=clock, speed=0, partial_percent=50) as sandbox:
        links = [f"https://example.com/p/{i}" for i in range(40)]
        ids = [add(sandbox, link=link)["order"] for link in links]
        answer = post(sandbox, action="status", orders=",".join(map(str, ids)))
        partial = sum(item["status"] == "Partial" for item in answer.values())
        assert 5 < partial < 35


def test_fail_marker_cancels_after_pending_with_full_refund(sandbox, clock):
    order_id = add(sandbox, link=LINK + "?fail=1", quantity=100)["order"]
    assert status(sandbox, order_id)["status"] == "Pending"
    clock.advance(1)
    answer = status(sandbox, order_id)
    assert (answer["status"], answer["remains"]) == ("Canceled", "100")
    assert post(sandbox, action="balance")["balance"] == "1000.00000"


def test_processing_marker_reports_processing(sandbox, clock):
    order_id = add(sandbox, link=LINK + "/processing")["order"]
    clock.advance(2)
    assert status(sandbox, order_id)["status"] == "Processing"


def test_multi_status_answers_per_id_with_errors(sandbox):
    order_id = add(sandbox)["order"]
    answer = post(sandbox, action="status", orders=f"{order_id}, 10,abc,")
    assert answer[str(order_id)]["status"] == "Pending"
    assert answer["10"] == {"error": "Incorrect order ID"}
    assert answer["abc"] == {"error": "Incorrect order ID"}
    assert status(sandbox, 10) == {"error": "Incorrect order ID"}


def test_multi_status_takes_at_most_100_ids(sandbox):
    assert len(post(sandbox, action="status", orders=",".join(map(str, range(100))))) == 100
    too_many = post(sandbox, action="status", orders=",".join(map(str, range(101))))
    assert too_many == {"error": "Too many IDs, the maximum is 100"}


def test_orders_progress_on_the_real_clock():
    with SandboxServer(speed=0.5) as sandbox:
        order_id = add(sandbox)["order"]
        # Pending lasts 0.05 s here: a busy machine may already be past it.
        assert status(sandbox, order_id)["status"] in ("Pending", "In progress")
        time.sleep(0.55)
        assert status(sandbox, order_id)["status"] == "Completed"


# --- refill -------------------------------------------------------------------------------------


def test_refill_of_a_completed_order_progresses_to_completed(sandbox, clock):
    order_id = add(sandbox)["order"]
    assert post(sandbox, action="refill", order=order_id) == {
        "error": "Order is not eligible for refill"
    }
    clock.advance(10)
    assert post(sandbox, action="refill", order=order_id) == {"refill": "1"}
    assert post(sandbox, action="refill_status", refill=1) == {"status": "Pending"}
    assert post(sandbox, action="refill", order=order_id) == {
        "error": "Refill request was sent earlier"
    }
    clock.advance(2)
    assert post(sandbox, action="refill_status", refill=1) == {"status": "In progress"}
    clock.advance(8)
    assert post(sandbox, action="refill_status", refill=1) == {"status": "Completed"}
    assert post(sandbox, action="refill_status", refill=99) == {"error": "Refill not found"}


def test_multi_refill_and_refill_status_use_the_list_shapes(sandbox, clock):
    refillable = add(sandbox)["order"]
    rejected = add(sandbox, link=LINK + "/reject-refill")["order"]
    no_refill = add(sandbox, CHEAP_FOLLOWERS)["order"]
    clock.advance(10)
    answer = post(sandbox, action="refill", orders=f"{refillable},{rejected},{no_refill},3")
    assert answer == [
        {"order": refillable, "refill": 1},
        {"order": rejected, "refill": 2},
        {"order": no_refill, "refill": {"error": "Refill is disabled for this service"}},
        {"order": 3, "refill": {"error": "Incorrect order ID"}},
    ]
    clock.advance(10)
    assert post(sandbox, action="refill_status", refills="1,2,3") == [
        {"refill": 1, "status": "Completed"},
        {"refill": 2, "status": "Rejected"},
        {"refill": 3, "status": {"error": "Refill not found"}},
    ]


# --- cancel -------------------------------------------------------------------------------------


def test_cancel_of_a_running_order_refunds_it_in_full(sandbox, clock):
    order_id = add(sandbox, quantity=1000)["order"]
    clock.advance(5)
    answer = post(sandbox, action="cancel", orders=str(order_id))
    assert answer == [{"order": order_id, "type": "order", "cancel": 1}]
    state = status(sandbox, order_id)
    assert (state["status"], state["remains"]) == ("Canceled", "1000")
    assert post(sandbox, action="balance")["balance"] == "1000.00000"
    again = post(sandbox, action="cancel", orders=str(order_id))
    assert again[0]["cancel"] == {"error": "Cancellation request was sent earlier"}
    clock.advance(20)
    assert status(sandbox, order_id)["status"] == "Canceled"
    assert post(sandbox, action="balance")["balance"] == "1000.00000"


def test_cancel_answers_per_item_errors_and_smmsend_types(sandbox, clock):
    done = add(sandbox, service=FOLLOWERS)["order"]
    clock.advance(10)
    dripfeed = add(sandbox, YOUTUBE_VIEWS, quantity=500, runs=2, interval=5)["order"]
    fields = {"username": "star", "min": 50, "max": 100, "delay": 0}
    subscription = add(sandbox, SUBSCRIPTION, link="", **fields)["order"]
    no_cancel = add(sandbox, CHEAP_FOLLOWERS)["order"]
    ids = f"{dripfeed},{subscription},{no_cancel},{done},9"
    assert post(sandbox, action="cancel", orders=ids) == [
        {"order": dripfeed, "type": "dripfeed", "cancel": 1},
        {"order": subscription, "type": "subscription", "cancel": 2},
        {"order": no_cancel, "type": "order", "cancel": {"error": CANCEL_DISABLED}},
        {"order": done, "type": "order", "cancel": {"error": "Order can't be canceled"}},
        {"order": 9, "type": "order", "cancel": {"error": "Incorrect order ID"}},
    ]


def test_cancel_status_call_and_rejected_cancels(sandbox):
    order_id = add(sandbox, link=LINK + "/reject-cancel")["order"]
    assert post(sandbox, action="cancel", order=order_id)[0]["cancel"] == 1
    assert post(sandbox, action="cancel", cancels="1,2") == [
        {"cancel": 1, "status": "Rejected"},
        {"cancel": 2, "status": {"error": "Cancel not found"}},
    ]
    assert status(sandbox, order_id)["status"] == "Pending"  # a rejected cancel changes nothing


# --- faults -------------------------------------------------------------------------------------


def test_error_fault_answers_its_message_and_creates_nothing(sandbox):
    sandbox.set_fault("error", actions=["add"], count=1, message="Incorrect link")
    assert add(sandbox) == {"error": "Incorrect link"}
    assert sandbox.orders() == []
    assert "order" in add(sandbox)  # used up


def test_http500_and_html_faults_answer_pages_not_json(sandbox):
    sandbox.set_fault("http500", count=1, status=502)
    sandbox.set_fault("html", count=1, status=503)
    sandbox.set_fault("html", count=1)
    fields = {"key": sandbox.key, "action": "balance"}
    bad_gateway = requests.post(sandbox.url, data=fields, timeout=5)
    assert bad_gateway.status_code == 502
    assert "Bad Gateway" in bad_gateway.text
    cloudflare = requests.post(sandbox.url, data=fields, timeout=5)
    assert cloudflare.status_code == 503
    assert "cloudflare" in cloudflare.text.lower()
    assert cloudflare.headers["Content-Type"].startswith("text/html")
    challenge = requests.post(sandbox.url, data=fields, timeout=5)
    assert challenge.status_code == 200
    assert challenge.text.startswith("<!DOCTYPE html>")
    assert requests.post(sandbox.url, data=fields, timeout=5).json()["currency"] == "USD"
    sandbox.set_fault("html", count=1, status=522)  # Cloudflare's own codes have no phrase
    assert requests.post(sandbox.url, data=fields, timeout=5).status_code == 522


def test_drop_fault_closes_the_socket_and_creates_nothing(sandbox):
    sandbox.set_fault("drop", actions="add", count=1)
    with pytest.raises(requests.ConnectionError):
        add(sandbox)
    assert sandbox.orders() == []
    [entry] = sandbox.log(action="add")
    assert (entry["fault"], entry["http_status"], entry["order"]) == ("drop", None, None)


def test_drop_after_accept_creates_the_order_but_never_answers(sandbox):
    sandbox.set_fault("drop_after_accept", actions=["add"], count=1)
    with pytest.raises(requests.ConnectionError):
        add(sandbox)
    [order] = sandbox.orders()
    [entry] = sandbox.log(action="add")
    assert entry["order"] == order["order"]
    assert entry["fault"] == "drop_after_accept"


def test_timeout_fault_creates_the_order_then_answers_too_late(sandbox):
    sandbox.set_fault("timeout", actions=["add"], count=1, seconds=2)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        add(sandbox, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert len(sandbox.orders()) == 1  # carried out: a retry would order twice
    assert post(sandbox, action="balance")["balance"] == "999.91000"  # others are not held up


def test_slow_fault_answers_after_the_delay(sandbox):
    sandbox.set_fault("slow", actions=["balance"], seconds=0.3)
    started = time.monotonic()
    assert post(sandbox, action="balance")["currency"] == "USD"
    assert time.monotonic() - started >= 0.3


def test_invalid_json_fault_carries_out_the_request(sandbox):
    sandbox.set_fault("invalid_json", actions=["add"], count=1)
    sandbox.set_fault("invalid_json", actions=["balance"], count=1, body='{"balance": "1')
    fields = {"key": sandbox.key, "action": "add", "service": 1, "link": LINK, "quantity": 100}
    response = requests.post(sandbox.url, data=fields, timeout=5)
    assert response.status_code == 200
    assert response.text.startswith("<br />")
    with pytest.raises(ValueError):
        response.json()
    assert len(sandbox.orders()) == 1
    response = requests.post(sandbox.url, data={**fields, "action": "balance"}, timeout=5)
    assert response.text == '{"balance": "1'


def test_nul_text_fault_puts_nul_and_lone_surrogates_in_the_texts(sandbox):
    sandbox.set_fault("nul_text", actions=["services", "add", "status"])
    response = requests.post(
        sandbox.url, data={"key": sandbox.key, "action": "services"}, timeout=5
    )
    assert b"\\u0000" in response.content and b"\\ud800" in response.content
    first = response.json()[0]
    assert first["name"] == "I\x00nstagram Followers [Refill 30D]\ud800"
    assert first["rate"] == "0.90" and first["service"] == 1  # numbers and ids as they were
    order_id = add(sandbox)["order"]  # carried out: the order exists
    assert [o["order"] for o in sandbox.orders()] == [order_id]
    assert status(sandbox, order_id)["status"] == "P\x00ending"
    assert add(sandbox, quantity=1) == {"error": "Q\x00uantity less than minimal 50\ud800"}


def test_faults_target_actions_counts_and_last_until_cleared(sandbox):
    sandbox.set_fault("error", actions=["add", "status"], count=2, message="Boom")
    forever = sandbox.set_fault("error", actions=["refill"], message="Down")
    assert post(sandbox, action="balance")["currency"] == "USD"  # not targeted
    assert add(sandbox) == {"error": "Boom"}
    assert status(sandbox, 1) == {"error": "Boom"}
    assert add(sandbox)["order"] == 23501
    for _ in range(3):
        assert post(sandbox, action="refill", order=23501) == {"error": "Down"}
    [left] = sandbox.faults()
    assert (left["id"], left["hits"], left["count"]) == (forever["id"], 3, None)
    response = requests.delete(
        f"{sandbox.base_url}/_sandbox/faults/{forever['id']}",
        headers={"X-Sandbox-Key": sandbox.key},
        timeout=5,
    )
    assert response.json() == {"deleted": forever["id"]}
    assert sandbox.faults() == []
    sandbox.set_fault("drop")
    sandbox.clear_faults()
    assert sandbox.faults() == []


def test_bad_fault_specs_are_refused(sandbox):
    with pytest.raises(SandboxControlError, match="400"):
        sandbox.set_fault("explode")
    with pytest.raises(SandboxControlError, match="400"):
        sandbox.set_fault("slow", count=0)


def test_cli_fault_syntax():
    assert parse_cli_fault("timeout:add:1") == {"mode": "timeout", "actions": "add", "count": "1"}
    spec = parse_cli_fault("error:add::Incorrect link")
    assert build_fault(spec, 1).message == "Incorrect link"
    assert build_fault(parse_cli_fault("http500"), 1).actions == ()
    json_spec = parse_cli_fault('{"mode": "slow", "seconds": 2, "actions": ["status"]}')
    assert build_fault(json_spec, 1).seconds == 2.0
    with pytest.raises(FaultSpecError):
        build_fault({"mode": "slow", "colour": "red"}, 1)


def test_faults_given_at_start_apply(clock):
    faults = ({"mode": "error", "actions": ["balance"], "count": 1, "message": "Maintenance"},)
    with SandboxServer(clock=clock, faults=faults) as sandbox:
        assert post(sandbox, action="balance") == {"error": "Maintenance"}
        assert post(sandbox, action="balance")["currency"] == "USD"


# --- control API --------------------------------------------------------------------------------


def test_control_api_needs_the_key(sandbox):
    for headers in ({}, {"X-Sandbox-Key": "wrong"}):
        response = requests.get(f"{sandbox.base_url}/_sandbox/orders", headers=headers, timeout=5)
        assert response.status_code == 403
    health = requests.get(f"{sandbox.base_url}/_sandbox/health", timeout=5).json()
    assert health["ok"] is True
    assert health["api_url"] == sandbox.url


def test_a_separate_control_key_can_be_required(clock):
    with SandboxServer(clock=clock, control_key="ctl") as sandbox:
        with pytest.raises(SandboxControlError, match="403"):
            sandbox.orders()
        url = f"{sandbox.base_url}/_sandbox/orders"
        assert requests.get(url, headers={"X-Sandbox-Key": "ctl"}, timeout=5).json() == {
            "orders": []
        }


def test_log_records_every_request_without_the_key(sandbox):
    order_id = add(sandbox)["order"]
    add(sandbox, quantity=1)
    post(sandbox, action="status", order=order_id)
    log = sandbox.log()
    assert [e["action"] for e in log] == ["add", "add", "status"]
    assert all("key" not in e["params"] for e in log)
    assert log[0]["order"] == order_id and log[0]["outcome"] == "ok"
    assert log[1]["outcome"] == "error: Quantity less than minimal 50"
    assert log[0]["params"]["link"] == LINK
    assert [e["action"] for e in sandbox.log(since=log[1]["id"])] == ["status"]
    assert sandbox.orders(link=LINK)[0]["order"] == order_id
    assert sandbox.orders(link="https://elsewhere.example/") == []


def test_reset_wipes_orders_log_faults_and_balance(sandbox):
    add(sandbox)
    sandbox.set_fault("error", actions=["refill"])
    sandbox.set_speed(0)
    sandbox.reset()
    assert sandbox.orders() == [] and sandbox.log() == [] and sandbox.faults() == []
    assert sandbox.balance() == Decimal("1000.00000")
    assert add(sandbox)["order"] == 23501
    assert status(sandbox, 23501)["status"] == "Pending"  # speed is back to 10 s


def test_balance_and_currency_can_be_set_at_runtime(sandbox):
    sandbox.set_balance("12.3456789", currency="EUR")
    assert post(sandbox, action="balance") == {"balance": "12.34568", "currency": "EUR"}
    with pytest.raises(SandboxControlError, match="400"):
        sandbox.set_balance("-1")
    with pytest.raises(SandboxControlError, match="400"):
        sandbox.set_balance("lots")


def test_speed_can_be_changed_at_runtime(sandbox):
    sandbox.set_speed(0)
    order_id = add(sandbox)["order"]
    assert status(sandbox, order_id)["status"] == "Completed"


# --- state file and processes -------------------------------------------------------------------


def test_state_survives_a_restart(tmp_path: Path, clock):
    db = tmp_path / "nested" / "sandbox.sqlite3"
    with SandboxServer(db_path=db, clock=clock) as sandbox:
        order_id = add(sandbox, quantity=1000)["order"]
        sandbox.restart()
        assert status(sandbox, order_id)["charge"] == "0.90000"
        assert add(sandbox)["order"] == order_id + 1
        assert post(sandbox, action="balance")["balance"] == "999.01000"
        assert len(sandbox.log()) == 4
    assert db.exists()


def test_runs_as_a_subprocess_and_keeps_state_after_a_crash(tmp_path: Path):
    with SandboxProcess(db_path=tmp_path / "s.sqlite3", args=["--services", "40"]) as sandbox:
        assert len(sandbox.call("services")) == 40
        order_id = sandbox.call("add", service=1, link=LINK, quantity=100)["order"]
        sandbox.kill()
        sandbox.start()
        assert sandbox.call("status", order=order_id)["charge"] == "0.09000"


def test_management_command_maps_its_flags_onto_the_server_config():
    from django.conf import settings

    if not settings.configured:
        pytest.skip("Django settings are not configured (run without -p no:django)")
    from providers.management.commands.run_sandbox_provider import Command
    from providers.sandbox.cli import config_from_options

    parser = Command().create_parser("manage.py", "run_sandbox_provider")
    options = vars(parser.parse_args(["--port", "0", "--key", "a", "--key", "b", "--speed", "3",
                                      "--balance", "5", "--fault", "drop:add:1"]))  # fmt: skip
    config = config_from_options(options)
    assert (config.port, config.keys, config.speed) == (0, ("a", "b"), 3.0)
    assert config.balance == Decimal("5")
    assert config.db_path.endswith("sandbox.sqlite3")
    assert config.faults == ({"mode": "drop", "actions": "add", "count": "1"},)
