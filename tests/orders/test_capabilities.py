"""Learning a provider's capabilities: a multi call refused as unknown ("Incorrect request")
falls back to single calls and is recorded on the provider, against the sandbox over real HTTP
speaking the helposmm dialect (seed 000: no multi refill, no multi refill_status, no cancel)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import CancelRequest, Order, Refill
from orders.services import (
    OrderError,
    order_cancel_request,
    order_create,
    order_refill_request,
    order_submit,
    provider_poll_orders,
    provider_poll_refills,
    provider_send_cancels,
    provider_send_refills,
)
from providers.models import Provider
from tests.orders.factories import make_service

pytestmark = pytest.mark.django_db
S = Order.Status
SPEED = 1.0
REFUSED = "error: Incorrect request"


def _placed(alice, service, link: str) -> Order:
    order = order_create(user=alice, service=service, data={"link": link, "quantity": "300"})
    placed = order_submit(order_id=order.pk)
    assert placed.status == S.PENDING, placed.attention_reason
    return placed


def _later(minutes: int = 10):
    return timezone.now() + timedelta(minutes=minutes)


def _finish(sandbox) -> None:
    """Past the end of every order and refill placed so far (the sandbox's clock)."""
    sandbox.advance(SPEED + 0.2)


def _completed_orders(alice, sandbox, provider, *links: str) -> list[Order]:
    service = make_service(provider=provider, sandbox_id=1)  # refill and cancel
    orders = [_placed(alice, service, link) for link in links]
    _finish(sandbox)
    provider_poll_orders(provider=provider, now=_later())
    for order in orders:
        order.refresh_from_db()
        assert order.status == S.COMPLETED
    return orders


def _multi(entry: dict, field: str = "orders") -> bool:
    return field in entry["params"]


@pytest.fixture
def helposmm(sandbox):
    sandbox.config(speed=SPEED, dialect="helposmm")
    return sandbox


def test_helposmm_refills_reach_the_sandbox_one_by_one_and_are_learned_once(
    alice, helposmm, provider
):
    first, second, third = _completed_orders(
        alice, helposmm, provider, *(f"https://instagram.com/p/refill{i}" for i in range(3))
    )
    refills = [order_refill_request(user=alice, order=o) for o in (first, second)]
    counts = provider_send_refills(provider=provider)
    assert counts["refill sent"] == 2 and counts["refill retry"] == 0
    for refill in refills:
        refill.refresh_from_db()
        assert refill.status == Refill.Status.PENDING and refill.upstream_refill_id
    log = helposmm.log("refill")
    assert [(_multi(e), e["outcome"]) for e in log] == [
        (True, REFUSED),
        (False, "ok"),
        (False, "ok"),
    ]
    provider.refresh_from_db()
    assert provider.supports_multi_refill is False and provider.capabilities_learned_at
    assert "multi refill (refill with orders=)" in provider.capabilities_note
    assert "Incorrect request" in provider.capabilities_note
    # Claimed: never sent twice.
    assert provider_send_refills(provider=provider) == {}
    assert len(helposmm.log("refill")) == 3
    # The next sweep goes one by one at once, and learns nothing more.
    note = provider.capabilities_note
    order_refill_request(user=alice, order=third)
    assert provider_send_refills(provider=provider)["refill sent"] == 1
    new = helposmm.log("refill")[3:]
    assert [(_multi(e), e["outcome"]) for e in new] == [(False, "ok")]
    provider.refresh_from_db()
    assert provider.capabilities_note == note and note.count("multi refill ") == 1


def test_helposmm_refill_status_falls_back_to_single_calls(alice, helposmm, provider):
    orders = _completed_orders(
        alice, helposmm, provider, "https://instagram.com/p/rs1", "https://instagram.com/p/rs2"
    )
    refills = [order_refill_request(user=alice, order=o) for o in orders]
    provider_send_refills(provider=provider)
    _finish(helposmm)
    counts = provider_poll_refills(provider=provider, now=_later())
    assert counts["refill completed"] == 2
    for refill in refills:
        refill.refresh_from_db()
        assert refill.status == Refill.Status.COMPLETED
    log = helposmm.log("refill_status")
    assert [(_multi(e, "refills"), e["outcome"]) for e in log] == [
        (True, REFUSED),
        (False, "ok"),
        (False, "ok"),
    ]
    provider.refresh_from_db()
    assert provider.supports_multi_refill_status is False
    assert "multi refill_status" in provider.capabilities_note


def test_multi_status_falls_back_and_is_learned_once(alice, sandbox, provider):
    sandbox.config(speed=SPEED, refuse=["status:orders"])
    service = make_service(provider=provider, sandbox_id=1)
    orders = [_placed(alice, service, f"https://instagram.com/p/st{i}") for i in range(2)]
    _finish(sandbox)
    result = provider_poll_orders(provider=provider, now=_later())
    assert result.changed == 2 and result.errors == 0
    for order in orders:
        order.refresh_from_db()
        assert order.status == S.COMPLETED
    log = sandbox.log("status")
    assert [(_multi(e), e["outcome"]) for e in log] == [
        (True, REFUSED),
        (False, "ok"),
        (False, "ok"),
    ]
    provider.refresh_from_db()
    assert provider.supports_multi_status is False
    assert provider.capabilities_note.count("multi status") == 1
    # The next poll asks one by one without trying the list first.
    later = _placed(alice, service, "https://instagram.com/p/st-later")
    _finish(sandbox)
    provider_poll_orders(provider=provider, now=_later(20))
    later.refresh_from_db()
    assert later.status == S.COMPLETED
    assert [(_multi(e), e["outcome"]) for e in sandbox.log("status")[3:]] == [(False, "ok")]


def test_helposmm_has_no_cancel_the_request_is_closed_and_cancel_turned_off(
    alice, helposmm, provider
):
    helposmm.config(speed=60)  # the order keeps running
    service = make_service(provider=provider, sandbox_id=1)
    order = _placed(alice, service, "https://instagram.com/p/cancel-helposmm")
    cancel = order_cancel_request(user=alice, order=order)
    counts = provider_send_cancels(provider=provider)
    assert counts["cancel refused"] == 1 and counts["cancel retry"] == 0
    cancel.refresh_from_db()
    assert cancel.status == CancelRequest.Status.REJECTED and "Incorrect request" in cancel.error
    log = helposmm.log("cancel")
    assert [(_multi(e), e["outcome"]) for e in log] == [(True, REFUSED), (False, REFUSED)]
    provider.refresh_from_db()
    assert provider.supports_cancel is False
    assert provider.supports_multi_cancel is True  # the single form was never understood
    assert provider_send_cancels(provider=provider) == {}  # never sent again
    with pytest.raises(OrderError, match="does not accept cancels"):
        order_cancel_request(user=alice, order=order)


def test_cancel_goes_one_by_one_when_only_the_list_form_is_refused(alice, sandbox, provider):
    sandbox.config(refuse=["cancel:orders"])
    service = make_service(provider=provider, sandbox_id=1)
    order = _placed(alice, service, "https://instagram.com/p/cancel-one")
    cancel = order_cancel_request(user=alice, order=order)
    assert provider_send_cancels(provider=provider)["cancel sent"] == 1
    cancel.refresh_from_db()
    assert cancel.status == CancelRequest.Status.SENT and cancel.upstream_cancel_id
    log = sandbox.log("cancel")
    assert [(_multi(e), e["outcome"]) for e in log] == [(True, REFUSED), (False, "ok")]
    assert log[1]["params"]["order"] == order.upstream_order_id
    provider.refresh_from_db()
    assert provider.supports_multi_cancel is False and provider.supports_cancel is True


@pytest.mark.parametrize(
    ("fault", "extra", "outcome"),
    [
        ("http500", {"status": 403}, "retry"),  # refused before the API: sent again later
        ("http500", {}, "unknown"),  # a 5xx may come after the work: never sent again
        ("error", {"message": "Incorrect order ID"}, "retry"),  # about the ids, not the call
        ("drop_after_accept", {}, "unknown"),  # may have been done: never sent again
    ],
)
def test_other_failures_of_a_multi_refill_learn_nothing_and_send_no_singles(
    alice, sandbox, provider, fault, extra, outcome
):
    sandbox.config(speed=SPEED)
    [order] = _completed_orders(alice, sandbox, provider, f"https://instagram.com/p/{fault}")
    refill = order_refill_request(user=alice, order=order)
    sandbox.fault(fault, actions=("refill",), count=1, **extra)
    counts = provider_send_refills(provider=provider)
    assert counts[f"refill {outcome}"] == 1
    assert len(sandbox.log("refill")) == 1  # the multi call only, no single fallback
    provider.refresh_from_db()
    assert provider.supports_multi_refill is True and provider.capabilities_learned_at is None
    refill.refresh_from_db()
    if outcome == "retry":
        assert refill.status == Refill.Status.QUEUED and refill.sent_at is None
    else:
        assert refill.status == Refill.Status.ERROR and "Outcome unknown" in refill.error


def test_admin_flag_off_sends_single_calls_from_the_start(alice, sandbox, provider):
    Provider.objects.filter(pk=provider.pk).update(supports_multi_status=False)
    provider.refresh_from_db()
    sandbox.config(speed=SPEED)
    service = make_service(provider=provider, sandbox_id=1)
    _placed(alice, service, "https://instagram.com/p/flag-off")
    _finish(sandbox)
    provider_poll_orders(provider=provider, now=_later())
    assert [_multi(e) for e in sandbox.log("status")] == [False]
