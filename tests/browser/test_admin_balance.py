"""The staff credit form in a real browser: Back after a credit shows an empty form, so a second
click cannot credit the same amount again with a fresh one-time token (found by trying it)."""

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import LedgerEntry
from accounts.services import customer_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_back_after_a_credit_does_not_bring_the_amount_back(new_page, django_user_model):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-12345")
    customer = customer_create(username="payer", password="pw-payer-12345")
    page = new_page()
    page.goto(reverse("admin:login"))
    page.get_by_label("Username").fill("boss")
    page.get_by_label("Password").fill("pw-boss-12345")
    page.get_by_role("button", name="Log in").click()
    page.goto(reverse("admin:accounts_user_balance", args=[customer.pk]))
    page.get_by_label("Amount").fill("5")
    page.get_by_label("Reason").fill("Bank transfer 77")
    page.get_by_role("button", name="Write to the ledger").click()
    page.wait_for_url(lambda url: "/balance/" not in url)
    page.go_back()
    page.wait_for_url(lambda url: "/balance/" in url)
    assert page.get_by_label("Amount").input_value() == ""
    assert page.get_by_label("Reason").input_value() == ""
    entries = LedgerEntry.objects.filter(user=customer)
    assert [e.amount for e in entries] == [Decimal("5.00000")]
