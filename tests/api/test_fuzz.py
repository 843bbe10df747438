"""Random actions and parameters thrown at /api/v2: never a 500, never HTML, always JSON, and a
refused call (an answer with a top-level "error") changes no balance, ledger, order, refill or
cancel."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import LedgerEntry, Wallet
from orders.models import CancelRequest, Order, Refill

pytestmark = pytest.mark.django_db

ACTIONS = ["services", "add", "status", "refill", "refill_status", "cancel", "balance"]
PARAMS = [
    "service",
    "link",
    "quantity",
    "runs",
    "interval",
    "comments",
    "usernames",
    "hashtags",
    "hashtag",
    "username",
    "media",
    "answer_number",
    "groups",
    "min",
    "max",
    "posts",
    "old_posts",
    "delay",
    "expiry",
    "order",
    "orders",
    "refill",
    "refills",
    "cancels",
    "idempotency_key",
]


def snapshot():
    return (
        sorted(Wallet.objects.values_list("user_id", "balance")),
        LedgerEntry.objects.count(),
        sorted(Order.objects.values_list("id", "status", "charge", "refunded")),
        sorted(Refill.objects.values_list("id", "status")),
        sorted(CancelRequest.objects.values_list("id", "status")),
    )


@st.composite
def requests_(draw, ids: list[int]):
    text = st.text(max_size=30)
    id_text = st.sampled_from([str(i) for i in ids]) | st.integers(-5, 2**64).map(str)
    value = st.one_of(
        text,
        id_text,
        st.lists(id_text, max_size=120).map(",".join),
        st.sampled_from(
            [
                "1",
                "0",
                "true",
                "false",
                "",
                " ",
                "https://example.com/p",
                "10/10/2030",
                "a\nb\r\nc",
                "30",
                "100",
            ]
        ),
        # What a JSON client may send instead of strings (a form client sends them as text).
        st.integers(-(2**70), 2**70),
        st.booleans(),
        st.none(),
        st.floats(),
        st.lists(st.integers(-5, 10**6), max_size=5),
        st.dictionaries(text, text, max_size=2),
    )
    params = draw(st.dictionaries(st.sampled_from(PARAMS) | text, value, max_size=6))
    params["action"] = draw(st.sampled_from(ACTIONS) | text)
    key = draw(st.sampled_from(["alice", "bob", "none", "junk"]))
    method = draw(st.sampled_from(["form", "json", "get", "raw"]))
    path = draw(st.sampled_from(["/api/v2", "/api/v2/"]))
    raw = draw(st.binary(max_size=60))
    return key, method, path, params, raw


@pytest.fixture
def keys(alice_key, bob_key):
    return {"alice": alice_key, "bob": bob_key, "none": None, "junk": "0" * 48}


def test_random_requests_never_break_the_api(client, keys, world):
    ids = [v for v in world.values() if isinstance(v, int)]

    @settings(
        max_examples=150,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(requests_(ids))
    def check(request):
        key, method, path, params, raw = request
        if keys[key] is not None:
            params = {**params, "key": keys[key]}
        before = snapshot()
        as_text = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in params.items()}
        if method == "form":
            response = client.post(path, as_text)
        elif method == "json":
            response = client.post(
                path, json.dumps(params, allow_nan=True), content_type="application/json"
            )
        elif method == "get":
            response = client.get(path, as_text)
        else:
            response = client.post(path, raw, content_type="application/x-www-form-urlencoded")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/json")
        answer = json.loads(response.content)
        assert (
            not isinstance(answer, dict) or answer.get("error") is None or set(answer) == {"error"}
        )
        if isinstance(answer, dict) and "error" in answer:
            assert isinstance(answer["error"], str) and answer["error"]
            assert "Internal error" not in answer["error"], params
            assert snapshot() == before, (params, answer)

    check()
