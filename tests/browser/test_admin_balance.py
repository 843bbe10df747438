"""The staff credit form in a real browser (found by trying it: Back + submit credited twice).
The first page only asks; the confirmation shows the balance before and after and writes; Back
after a credit shows an empty form; the confirmation sent again replays the first entry; the
same amount typed again is refused until "Yes, again" is ticked."""

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import LedgerEntry
from accounts.services import customer_create
from tests.browser.conftest import staff_login
from tests.totp import give_second_factor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _staff_on_the_form(new_page, django_user_model):
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-12345")
    customer = customer_create(username="payer", password="pw-payer-12345")
    page = new_page()
    url = reverse("admin:accounts_user_balance", args=[customer.pk])
    staff_login(page, "boss", "pw-boss-12345", give_second_factor(boss), url=url)
    return page, customer


def _credit_five(page, *, balance: str, after: str) -> None:
    page.get_by_label("Amount").fill("5")
    page.get_by_label("Reason").fill("Bank transfer 77")
    page.get_by_role("button", name="Continue").click()
    question = f"Credit $5.00 to payer, balance {balance} → {after}?"
    page.get_by_text(question).wait_for()


def test_back_after_a_credit_does_not_bring_the_amount_back(new_page, django_user_model):
    page, customer = _staff_on_the_form(new_page, django_user_model)
    _credit_five(page, balance="$0.00", after="$5.00")
    assert LedgerEntry.objects.filter(user=customer).count() == 0  # asked, not written
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(lambda url: "/balance/" not in url)
    page.go_back()  # the confirmation
    page.go_back()  # the form
    page.wait_for_url(lambda url: "/balance/" in url)
    assert page.get_by_label("Amount").input_value() == ""
    assert page.get_by_label("Reason").input_value() == ""
    entries = LedgerEntry.objects.filter(user=customer)
    assert [e.amount for e in entries] == [Decimal("5.00000")]

    # The same credit typed again: refused until confirmed again.
    _credit_five(page, balance="$5.00", after="$10.00")
    page.get_by_text("The same change (+$5.00) was written to this balance").wait_for()
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("Nothing was written: confirm again").wait_for()
    assert LedgerEntry.objects.filter(user=customer).count() == 1
    page.get_by_label("Yes, again").check()
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(lambda url: "/balance/" not in url)
    assert [e.amount for e in entries.all()] == [Decimal("5.00000"), Decimal("5.00000")]


def test_the_confirmation_sent_again_after_back_credits_once(new_page, django_user_model):
    page, customer = _staff_on_the_form(new_page, django_user_model)
    _credit_five(page, balance="$0.00", after="$5.00")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(lambda url: "/balance/" not in url)
    page.go_back()
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("This form was already submitted").wait_for()
    entries = LedgerEntry.objects.filter(user=customer)
    assert [e.amount for e in entries] == [Decimal("5.00000")]
