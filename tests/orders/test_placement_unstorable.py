"""An `add` answer the database cannot store never leaves the order in SUBMITTING without a
recorded call (issue 11, point 4): the sandbox over real HTTP, and the writes made to fail."""

from decimal import Decimal

import pytest
from django.db import DataError

from accounts.models import LedgerEntry
from orders.models import Order
from orders.services import order_create, order_submit
from orders.services import placement as placement_module
from providers.models import ProviderCall
from tests.orders.factories import make_service

pytestmark = pytest.mark.django_db
S = Order.Status


def _order(alice, service, quantity: str = "100") -> Order:
    data = {"link": "https://instagram.com/p/unstorable", "quantity": quantity}
    return order_create(user=alice, service=service, data=data)


def _call(provider) -> ProviderCall:
    return ProviderCall.objects.filter(provider=provider, action="add").get()


def test_an_add_error_with_nul_cancels_with_a_refund_and_a_recorded_call(
    alice, sandbox, provider, ledger_clean
):
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)
    sandbox.fault("error", message="Incorrect\u0000 link\ud800")
    result = order_submit(order_id=order.pk)  # raised DataError before, order left SUBMITTING
    assert result.status == S.CANCELED and result.refunded == order.charge
    assert "Incorrect link\ufffd" in result.attention_reason
    call = _call(provider)
    assert (call.ok, call.order_ref, call.error_message) == (
        False,
        order.pk,
        "Incorrect link\ufffd",
    )
    assert LedgerEntry.objects.filter(order_ref=order.pk, kind="refund").count() == 1
    ledger_clean()


def test_an_add_answered_with_nul_in_its_texts_is_placed(alice, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)
    sandbox.fault("nul_text")  # carried out upstream; the answer's id is a number, unchanged
    assert order_submit(order_id=order.pk).status == S.PENDING
    assert _call(provider).ok and len(sandbox.orders()) == 1


def test_an_order_id_longer_than_the_column_goes_to_review_with_the_call_recorded(
    alice, sandbox, provider
):
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)
    long_id = "A" * 80
    sandbox.fault("invalid_json", body=f'{{"order": "{long_id}"}}')  # carried out upstream
    result = order_submit(order_id=order.pk)  # raised DataError (varchar 64) before
    assert result.status == S.NEEDS_REVIEW and result.upstream_order_id == ""
    assert "unknown" in result.attention_reason
    call = _call(provider)
    assert not call.ok and call.error_kind == "bad_answer" and long_id in call.error_message


def test_a_placement_the_database_refuses_goes_to_review_with_the_upstream_id(
    alice, sandbox, provider, monkeypatch
):
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)

    def refuse(*args, **kwargs):
        raise DataError("value too long for type character varying(64)")

    monkeypatch.setattr(placement_module, "_placed", refuse)
    result = order_submit(order_id=order.pk)
    [upstream] = sandbox.orders()
    assert result.status == S.NEEDS_REVIEW
    assert f"Placed at {provider.name} as {upstream['order']}" in result.attention_reason
    assert "DataError" in result.attention_reason
    assert _call(provider).ok
    assert order_submit(order_id=order.pk) is None  # never sent twice
    assert len(sandbox.orders()) == 1


def test_a_refusal_the_database_cannot_store_goes_to_review_not_submitting(
    alice, sandbox, provider, monkeypatch
):
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)
    sandbox.fault("error", message="Incorrect link")

    def refuse(*args, **kwargs):
        raise DataError("refused")

    monkeypatch.setattr(placement_module, "_refused_for_good", refuse)
    result = order_submit(order_id=order.pk)
    assert result.status == S.NEEDS_REVIEW
    assert result.attention_reason.startswith("The outcome of `add`: the panel could not store it")
    assert not _call(provider).ok
    assert result.refunded == Decimal("0")  # a person decides; nothing settled twice
