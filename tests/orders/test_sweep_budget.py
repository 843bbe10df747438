"""A provider sweep has a time budget (orders.services.common.Deadline, half of Celery's soft
time limit): no upstream call starts after it, and what it did not reach stays queued or due for
the next sweep. Without it, a provider answering one call per id (no list form) made a sweep
run past the soft limit and be killed before it wrote anything, over and over; and refills
claimed but never sent waited the 15-minute re-send window meant for a worker that died."""

import pytest

from orders.models import Refill
from orders.services import order_refill_request, provider_poll_orders, provider_send_refills
from orders.services.common import Deadline
from orders.services.polling import SINGLE_CALL_BATCH
from providers.models import Provider
from tests.orders.factories import make_service
from tests.orders.test_capabilities import _completed_orders, _later, _placed

pytestmark = pytest.mark.django_db


class PassesAfter:
    """A deadline that passes after `checks` looks at it."""

    def __init__(self, checks: int) -> None:
        self.left = checks

    def passed(self) -> bool:
        self.left -= 1
        return self.left < 0


def test_a_real_deadline_passes_when_its_time_is_up():
    assert Deadline(at=0).passed()
    assert not Deadline().passed()


def test_refills_the_sweep_had_no_time_for_are_unclaimed_not_left_for_15_minutes(
    alice, sandbox, provider
):
    sandbox.config(speed=1.0)  # orders complete within a second
    Provider.objects.filter(pk=provider.pk).update(supports_multi_refill=False)
    provider.refresh_from_db()
    orders = _completed_orders(
        alice, sandbox, provider, *(f"https://instagram.com/p/b{i}" for i in range(3))
    )
    refills = [order_refill_request(user=alice, order=order) for order in orders]
    counts = provider_send_refills(provider=provider, deadline=PassesAfter(2))
    assert counts["refill sent"] == 1 and counts["refill deferred"] == 2
    now = {r.pk: Refill.objects.get(pk=r.pk) for r in refills}.values()
    sent = [r for r in now if r.status == Refill.Status.PENDING and r.upstream_refill_id]
    left = [r for r in now if r.status == Refill.Status.QUEUED and r.sent_at is None]
    assert (len(sent), len(left)) == (1, 2)
    assert len(sandbox.log("refill")) == 1
    counts = provider_send_refills(provider=provider)  # the next sweep sends them at once
    assert counts["refill sent"] == 2 and len(sandbox.log("refill")) == 3


def test_a_provider_without_multi_status_is_polled_in_small_batches_over_several_sweeps(
    alice, sandbox, provider
):
    Provider.objects.filter(pk=provider.pk).update(supports_multi_status=False)
    provider.refresh_from_db()
    service = make_service(provider=provider, sandbox_id=1)
    count = SINGLE_CALL_BATCH + 5
    for i in range(count):
        _placed(alice, service, f"https://instagram.com/p/s{i}")
    first = provider_poll_orders(provider=provider, now=_later(), deadline=PassesAfter(1))
    assert (first.polled, first.deferred) == (SINGLE_CALL_BATCH, 5)
    second = provider_poll_orders(provider=provider, now=_later())
    assert (second.polled, second.deferred) == (5, 0)


def test_a_soft_time_limit_during_a_call_never_sends_that_refill_again(
    alice, sandbox, provider, monkeypatch
):
    """The call in flight may have reached the provider: its refill goes to an admin (error,
    outcome unknown), never back to the queue; the ones after it were not sent: unclaimed."""
    from celery.exceptions import SoftTimeLimitExceeded

    from orders.services import requests as requests_module

    sandbox.config(speed=1.0)
    Provider.objects.filter(pk=provider.pk).update(supports_multi_refill=False)
    provider.refresh_from_db()
    orders = _completed_orders(
        alice, sandbox, provider, *(f"https://instagram.com/p/t{i}" for i in range(3))
    )
    refills = [order_refill_request(user=alice, order=order) for order in orders]
    real_call, calls = requests_module.provider_call, []

    def killed_on_the_second_call(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise SoftTimeLimitExceeded()
        return real_call(*args, **kwargs)

    monkeypatch.setattr(requests_module, "provider_call", killed_on_the_second_call)
    with pytest.raises(SoftTimeLimitExceeded):
        provider_send_refills(provider=provider)
    first, second, third = (Refill.objects.get(pk=r.pk) for r in refills)
    assert first.status == Refill.Status.PENDING
    assert second.status == Refill.Status.ERROR and "Outcome unknown" in second.error
    assert third.status == Refill.Status.QUEUED and third.sent_at is None
