"""`add` with an idempotency key: a retried call answers the first order and charges nothing
more; the same key with another body is an error."""

from decimal import Decimal

import pytest

from accounts.models import LedgerEntry
from orders.models import Order
from tests.api.factories import ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(db):
    return ServiceFactory(rate=Decimal("10"), dripfeed=False)


def add(api, key, service, quantity="100", **extra):
    return api(
        key,
        action="add",
        service=service.pk,
        link="https://example.com/a",
        quantity=quantity,
        **extra,
    )


@pytest.mark.parametrize("how", ["header", "param"])
def test_a_retry_answers_the_same_order_and_charges_once(api, alice, alice_key, service, how):
    def call(quantity="100"):
        if how == "header":
            return add(api, alice_key, service, quantity, headers={"Idempotency-Key": "retry-1"})
        return add(api, alice_key, service, quantity, idempotency_key="retry-1")

    first = call()
    assert call() == first
    assert Order.objects.filter(user=alice).count() == 1
    assert LedgerEntry.objects.filter(user=alice, kind="charge").count() == 1
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("49.00000")
    different = call(quantity="200")
    assert set(different) == {"error"} and different["error"]
    assert Order.objects.filter(user=alice).count() == 1


def test_without_a_key_each_call_is_a_new_order(api, alice, alice_key, service):
    assert add(api, alice_key, service) != add(api, alice_key, service)
    assert Order.objects.filter(user=alice).count() == 2


def test_keys_are_per_customer(api, alice_key, rich_key, service):
    a = add(api, alice_key, service, idempotency_key="same")
    b = add(api, rich_key, service, idempotency_key="same")
    assert a["order"] != b["order"]


def test_a_key_too_long_is_refused(api, alice_key, service):
    answer = add(api, alice_key, service, idempotency_key="x" * 129)
    assert answer == {
        "error": "The idempotency key must be printable text of at most 128 characters."
    }
    assert not Order.objects.exists()


def test_a_retry_gets_its_order_even_after_the_service_changed(api, alice, alice_key, service):
    first = add(api, alice_key, service, idempotency_key="before-change")
    assert "order" in first
    service.is_enabled = False
    service.max = 50  # the first order's 100 would no longer pass either
    service.save()
    assert add(api, alice_key, service, idempotency_key="before-change") == first
    assert LedgerEntry.objects.filter(user=alice, kind="charge").count() == 1
    # A new key for the changed service is refused as it should be, charging nothing.
    assert add(api, alice_key, service, idempotency_key="after-change") == {
        "error": "Incorrect service ID"
    }
    assert LedgerEntry.objects.filter(user=alice, kind="charge").count() == 1
