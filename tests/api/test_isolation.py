"""A customer only ever sees its own orders, refills and cancels: another customer's id answers
exactly like an id that does not exist, in every action that takes ids."""

import pytest

from orders.models import CancelRequest, Refill

pytestmark = pytest.mark.django_db

REQUESTS = [
    {"action": "status", "order": "{id}"},
    {"action": "status", "orders": "{id}"},
    {"action": "refill", "order": "{id}"},
    {"action": "refill", "orders": "{id}"},
    {"action": "cancel", "orders": "{id}"},
    {"action": "cancel", "order": "{id}"},
]
REQUESTS_FOR = {
    "order": REQUESTS,
    "refill": [
        {"action": "refill_status", "refill": "{id}"},
        {"action": "refill_status", "refills": "{id}"},
    ],
    "cancel": [{"action": "cancel", "cancels": "{id}"}],
}


def _swap(answer, real_id: int, stand_in: int):
    """The answer with the stand-in id written as the real one, to compare them."""
    return __import__("json").loads(
        __import__("json").dumps(answer).replace(str(stand_in), str(real_id))
    )


@pytest.mark.parametrize("kind", ["order", "refill", "cancel"])
def test_another_customers_ids_look_missing(api, alice_key, bob_key, world, kind):
    alice_id = world[
        {"order": "in_progress", "refill": "refill_completed", "cancel": "cancel_completed"}[kind]
    ]
    missing = world["missing"]
    counts = (Refill.objects.count(), CancelRequest.objects.count())
    for request in REQUESTS_FOR[kind]:
        as_bob = api(bob_key, **{k: v.format(id=alice_id) for k, v in request.items()})
        as_missing = api(bob_key, **{k: v.format(id=missing) for k, v in request.items()})
        assert as_bob == _swap(as_missing, alice_id, missing), request
        assert "Partial" not in str(as_bob) and "Completed" not in str(as_bob)
    assert (Refill.objects.count(), CancelRequest.objects.count()) == counts


def test_alice_sees_her_own(api, alice_key, world):
    assert api(alice_key, action="status", order=world["in_progress"])["status"] == "In progress"
    assert api(alice_key, action="refill_status", refill=world["refill_completed"]) == {
        "status": "Completed"
    }
    assert api(alice_key, action="cancel", cancels=world["cancel_completed"]) == [
        {"cancel": world["cancel_completed"], "status": "Completed"}
    ]


def test_bob_cannot_see_alices_ids_among_his_own(api, bob_key, world):
    answer = api(bob_key, action="status", orders=f"{world['bob_order']},{world['partial']}")
    assert answer[str(world["partial"])] == {"error": "Incorrect order ID"}
    assert answer[str(world["bob_order"])]["status"] == "In progress"
