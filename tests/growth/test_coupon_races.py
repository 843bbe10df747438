"""Real races on PostgreSQL (threads, each with its own connection, released together): a code
with 10 uses redeemed or reserved by 50 customers at once is used exactly 10 times; one customer
redeeming a single-use code 10 times at once is credited once. check_ledger is clean after each."""

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection

from accounts.coupons import CouponError, coupon_redeem
from accounts.models import Coupon, CouponUse, LedgerEntry, Payment
from accounts.payments import payment_start
from accounts.services import customer_create
from tests.payments.core_helpers import payment_urls
from tests.threads import run_in_threads

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]


@pytest.fixture
def customers(db):
    cache.clear()
    return [customer_create(username=f"c{n}") for n in range(50)]


def _outcomes(results) -> tuple[int, list]:
    ok = [r for r in results if isinstance(r, LedgerEntry | Payment)]
    others = [r for r in results if not isinstance(r, LedgerEntry | Payment)]
    return len(ok), others


def test_50_redemptions_of_a_code_with_10_uses_give_exactly_10(customers):
    code = Coupon.objects.create(
        code="TEN", kind=Coupon.Kind.BALANCE, value=Decimal("5"), max_uses=10
    )
    results = run_in_threads(50, lambda i: coupon_redeem(user=customers[i], code="ten"))
    ok, others = _outcomes(results)
    assert ok == 10, others
    assert all(isinstance(r, CouponError) and "used up" in str(r) for r in others), others
    code.refresh_from_db()
    assert code.uses == 10
    assert CouponUse.objects.filter(coupon=code, status="used").count() == 10
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BONUS).count() == 10
    call_command("check_ledger")


def test_one_customer_redeeming_10_times_at_once_is_credited_once(customers):
    Coupon.objects.create(code="ONCE", kind=Coupon.Kind.BALANCE, value=Decimal("5"))
    alice = customers[0]
    results = run_in_threads(10, lambda i: coupon_redeem(user=alice, code="once"))
    ok, others = _outcomes(results)
    assert ok == 1, others
    assert all(isinstance(r, CouponError) for r in others), others
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("5")
    call_command("check_ledger")


def test_50_payments_started_with_a_deposit_code_of_10_uses_reserve_exactly_10(customers, settings):
    settings.PAYMENT_METHODS = ["manual"]
    code = Coupon.objects.create(code="DEP10", value=Decimal("10"), max_uses=10)

    def start(i: int) -> Payment:
        return payment_start(
            user=customers[i],
            method="manual",
            amount=Decimal("20"),
            urls=payment_urls(),
            customer_reference=f"R{i}",
            coupon="dep10",
        )

    ok, others = _outcomes(run_in_threads(50, start))
    assert ok == 10, others
    assert all(isinstance(r, CouponError) for r in others), others
    code.refresh_from_db()
    assert code.uses == 10
    # A refused code starts no payment.
    assert Payment.objects.count() == 10
    assert CouponUse.objects.filter(status="reserved").count() == 10
