"""Every request shown in the five seed documents, fed to /api/v2; each answer must have the
documented example's shape: the same keys with the same JSON types, recursively, and no key
that no document shows for that answer. The examples are stored as they are documented in
tests/api/golden/<provider>.json."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db

GOLDEN = Path(__file__).parent / "golden"
DOCS = {p.stem: json.loads(p.read_text()) for p in sorted(GOLDEN.glob("*.json"))}
CASES = [
    pytest.param(doc["provider"], case, id=f"{doc['provider']}: {case['name']}")
    for doc in DOCS.values()
    for case in doc["cases"]
]


def json_type(value) -> str:
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if isinstance(value, kind):
            return name
    return {dict: "object", list: "array", type(None): "null"}[type(value)]


def documented(provider: str, case: dict):
    response = case["response"]
    if provider == "smmsend" and case["kind"] == "refill_status_multi":
        # smmsend's page once writes "type" for "status" in this example (its other examples
        # and every other document say "status"); the panel answers "status" throughout.
        response = [
            {("status" if k == "type" else k): v for k, v in item.items()} for item in response
        ]
    return response


def keys_anywhere(value) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(keys_anywhere(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_anywhere(v) for v in value))
    return set()


# For each kind of answer, every key any document shows in it (smmsend adds "type" to cancel
# answers, helposmm "desc" to services...): an answer may carry these and nothing else.
ALLOWED_KEYS: dict[str, set[str]] = {}
for _doc in DOCS.values():
    for _case in _doc["cases"]:
        if _case["response"] is None:
            continue
        keys = keys_anywhere(documented(_doc["provider"], _case))
        if _case["kind"] == "status_multi":
            keys -= set(_case["response"])  # the top level is keyed by the order ids
        ALLOWED_KEYS.setdefault(_case["kind"], set()).update(keys)


def assert_same_shape(answer, example, path: str = "$") -> None:
    assert json_type(answer) == json_type(example), f"{path}: {answer!r} vs documented {example!r}"
    if isinstance(example, dict):
        missing = set(example) - set(answer)
        assert not missing, f"{path}: missing {sorted(missing)} in {answer!r}"
        for key, value in example.items():
            assert_same_shape(answer[key], value, f"{path}.{key}")
    elif isinstance(example, list):
        assert len(answer) == len(example), (
            f"{path}: {len(answer)} items, documented {len(example)}"
        )
        for i, (a, e) in enumerate(zip(answer, example, strict=True)):
            assert_same_shape(a, e, f"{path}[{i}]")


def fill(request: dict, ids: dict) -> dict:
    return {k: v.format(**ids) for k, v in request.items()}


@pytest.mark.parametrize(("provider", "case"), CASES)
def test_documented_request_gets_documented_shape(api, alice_key, world, provider, case):
    request = fill(case["request"], world)
    answer = api(alice_key, **request)
    if case["kind"] == "services":
        assert answer, "the panel has enabled services"
        for item in answer:
            for example in documented(provider, case):
                assert_same_shape(item, example, f"$[{item['service']}]")
            assert set(item) <= ALLOWED_KEYS["services"], set(item) - ALLOWED_KEYS["services"]
        return
    example = documented(provider, case)
    assert not (isinstance(answer, dict) and "error" in answer and "error" not in example), answer
    if case["kind"] == "status_multi":
        # Keyed by the ids asked for, in the order asked; compare the values position by position.
        assert list(answer) == request["orders"].split(","), answer
        assert_same_shape(list(answer.values()), list(example.values()))
    else:
        assert_same_shape(answer, example)
    extra = keys_anywhere(answer) - ALLOWED_KEYS[case["kind"]]
    if case["kind"] == "status_multi":
        extra -= set(answer)
    assert not extra, f"keys no document shows: {sorted(extra)}"


def test_status_values_are_the_documented_ones(api, alice_key, world):
    answer = api(alice_key, action="status", orders=f"{world['partial']},{world['in_progress']}")
    assert answer[str(world["partial"])] == {
        "charge": "0.27819",
        "start_count": "3572",
        "status": "Partial",
        "remains": "157",
        "currency": "USD",
    }
    assert answer[str(world["in_progress"])]["status"] == "In progress"
    assert answer[str(world["in_progress"])]["charge"] == "1.44219"


def test_single_refill_answers_the_id_as_a_string(api, alice_key, world):
    from orders.models import Refill

    answer = api(alice_key, action="refill", order=world["refillable_1"])
    assert isinstance(answer["refill"], str)
    assert Refill.objects.get(pk=int(answer["refill"])).order_id == world["refillable_1"]


def test_multi_refill_and_cancel_answer_ids_as_numbers(api, alice_key, world):
    answer = api(alice_key, action="refill", orders=f"{world['refillable_2']},{world['missing']}")
    assert answer[0]["order"] == world["refillable_2"] and isinstance(answer[0]["refill"], int)
    assert answer[1] == {"order": world["missing"], "refill": {"error": "Incorrect order ID"}}
    answer = api(alice_key, action="cancel", orders=f"{world['cancellable_drip']}")
    assert answer[0]["type"] == "dripfeed" and isinstance(answer[0]["cancel"], int)


def test_services_show_this_customers_prices(api, alice_key, alice, world):
    from catalog.models import CustomerDiscount, CustomerRate

    CustomerDiscount.objects.create(user=alice, percent=Decimal("10"))
    CustomerRate.objects.create(user=alice, service_id=world["svc_comments"], rate=Decimal("5.5"))
    by_id = {s["service"]: s for s in api(alice_key, action="services")}
    assert by_id[world["svc_default"]]["rate"] == "0.81"  # 0.90 less 10 %
    assert by_id[world["svc_comments"]]["rate"] == "5.50"  # the custom rate wins
    assert (
        by_id[world["svc_default"]]["min"] == "10" and by_id[world["svc_default"]]["max"] == "10000"
    )
    assert by_id[world["svc_default"]]["category"] == "First Category"


def test_services_leave_out_disabled_ones(api, alice_key, world):
    from catalog.models import Service

    Service.objects.filter(pk=world["svc_poll"]).update(is_enabled=False)
    ids = {s["service"] for s in api(alice_key, action="services")}
    assert world["svc_poll"] not in ids and world["svc_default"] in ids


def test_balance_is_the_wallet(api, alice_key, alice):
    assert api(alice_key, action="balance") == {"balance": "50.00000", "currency": "USD"}
