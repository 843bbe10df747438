"""The statement's memo column (LedgerEntry.details): the order link is shown beside it, so the
"Order N: " its memo often starts with is not repeated."""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import LedgerEntry, User
from accounts.services import balance_debit

pytestmark = pytest.mark.django_db


def test_details_drop_the_order_prefix_of_the_entry_own_order() -> None:
    entry = LedgerEntry(order_ref=7, memo="Order 7: 1000 followers")
    assert entry.details == "1000 followers"


def test_details_keep_a_memo_about_another_order_or_without_one() -> None:
    assert LedgerEntry(order_ref=7, memo="Order 8: x").details == "Order 8: x"
    assert LedgerEntry(order_ref=None, memo="Order 7: x").details == "Order 7: x"
    assert LedgerEntry(order_ref=None, memo="Opening balance").details == "Opening balance"


def test_statement_page_shows_the_memo_without_the_order_prefix(
    alice: User, client: Client
) -> None:
    balance_debit(user=alice, amount=Decimal("1"), order_ref=7, memo="Order 7: likes for a post")
    client.force_login(alice)
    page = client.get(reverse("funds")).content.decode()
    assert "likes for a post" in page
    assert "Order 7: likes" not in page
