from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import LedgerEntry

pytestmark = pytest.mark.django_db


def test_admin_credits_a_customer_through_the_ledger(client, staff, alice):
    client.force_login(staff)
    url = reverse("admin:accounts_user_balance", args=[alice.pk])
    response = client.post(
        url,
        {
            "direction": "credit",
            "amount": "7.25",
            "reason": "PayPal 123",
            "payment_ref": "pp-123",
            "confirm": "1",  # the confirmation step's button (the first step writes nothing)
        },
    )
    assert response.status_code == 302
    entry = LedgerEntry.objects.filter(user=alice).latest("id")
    assert (entry.amount, entry.created_by, entry.memo, entry.payment_ref) == (
        Decimal("7.25000"),
        staff,
        "PayPal 123",
        "pp-123",
    )


def test_admin_debit_beyond_the_balance_shows_the_error_and_writes_nothing(client, staff, alice):
    client.force_login(staff)
    url = reverse("admin:accounts_user_balance", args=[alice.pk])
    response = client.post(url, {"direction": "debit", "amount": "99", "reason": "oops"})
    assert response.status_code == 200
    assert "Not enough funds" in response.content.decode()
    assert LedgerEntry.objects.filter(user=alice).count() == 1


def test_admin_balance_form_requires_a_reason(client, staff, alice):
    client.force_login(staff)
    url = reverse("admin:accounts_user_balance", args=[alice.pk])
    response = client.post(url, {"direction": "credit", "amount": "1"})
    assert "This field is required" in response.content.decode()
    assert LedgerEntry.objects.filter(user=alice).count() == 1


def test_customer_change_page_shows_balance_and_ledger(client, staff, alice):
    client.force_login(staff)
    response = client.get(reverse("admin:accounts_user_change", args=[alice.pk]))
    body = response.content.decode()
    assert "50.00000" in body
    assert "Opening balance" in body
    assert "Credit or debit the balance" in body


def test_customers_without_staff_rights_cannot_change_balances(client, alice, bob):
    client.force_login(bob)
    url = reverse("admin:accounts_user_balance", args=[alice.pk])
    response = client.post(url, {"direction": "credit", "amount": "1000", "reason": "me"})
    assert response.status_code == 302  # to the admin login
    assert bob.balance == Decimal("0")
    assert LedgerEntry.objects.filter(user=alice).count() == 1


def test_admin_balance_form_submitted_twice_credits_once(client, staff, alice):
    # A double click or a browser resending the POST must not pay the customer twice.
    client.force_login(staff)
    url = reverse("admin:accounts_user_balance", args=[alice.pk])
    page = client.get(url)
    token = page.context["submission"]
    assert f'name="submission" value="{token}"' in page.content.decode()
    data = {
        "direction": "credit",
        "amount": "5",
        "reason": "bank",
        "submission": token,
        "confirm": "1",
    }
    assert client.post(url, data).status_code == 302
    second = client.post(url, data, follow=True)
    assert "already submitted" in second.content.decode()
    assert LedgerEntry.objects.filter(user=alice).count() == 2
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("55.00000")
    # A new rendering of the form is a new change (the same amount again: confirmed again).
    data["submission"] = client.get(url).context["submission"]
    assert data["submission"] != token
    client.post(url, {**data, "again": "1"})
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("60.00000")


def test_ledger_list_never_scans_the_whole_ledger_for_its_filters(client, staff, alice):
    # The ledger grows by two entries per order: no DISTINCT and no MIN/MAX over all of it
    # (date_hierarchy) on each visit.
    client.force_login(staff)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("admin:accounts_ledgerentry_changelist"))
    assert response.status_code == 200 and "Opening balance" in response.content.decode()
    sql = " ".join(q["sql"].lower() for q in ctx.captured_queries)
    assert "distinct" not in sql and "min(" not in sql and "max(" not in sql


# --- Confirm first; an identical change soon after needs "Yes, again" (issue 11 #9) ----------


def _form(client, url, amount="5", direction="credit"):
    token = client.get(url).context["submission"]
    return {"direction": direction, "amount": amount, "reason": "bank 9", "submission": token}


def test_the_first_post_asks_to_confirm_with_the_balance_before_and_after(client, staff, alice):
    client.force_login(staff)
    url = reverse("admin:accounts_user_balance", args=[alice.pk])
    data = _form(client, url)
    page = client.post(url, data)
    body = page.content.decode()
    assert page.status_code == 200
    assert "Credit $5.00 to alice, balance $50.00 → $55.00?" in body
    assert 'name="confirm" value="1"' in body and f'value="{data["submission"]}"' in body
    assert 'value="Confirm"' in body and 'name="again"' not in body
    assert LedgerEntry.objects.filter(user=alice).count() == 1  # nothing written yet
    debit = client.post(url, {**data, "direction": "debit", "amount": "2"}).content.decode()
    assert "Debit $2.00 from alice, balance $50.00 → $48.00?" in debit
    # "Change the form" goes back to the filled form; Confirm writes.
    edit = client.post(url, {**data, "confirm": "1", "edit": "Change"})
    assert edit.context["preview"] is None and 'value="Continue"' in edit.content.decode()
    assert "bank 9" in edit.content.decode()
    assert client.post(url, {**data, "confirm": "1"}).status_code == 302
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("55.00000")


def test_an_identical_credit_soon_after_is_refused_until_yes_again(client, staff, alice):
    client.force_login(staff)
    url = reverse("admin:accounts_user_balance", args=[alice.pk])
    assert client.post(url, {**_form(client, url), "confirm": "1"}).status_code == 302
    # Back, the same amount typed again on a fresh form (a fresh one-time token).
    data = _form(client, url)
    preview = client.post(url, data).content.decode()
    assert "The same change (+$5.00) was written to this balance" in preview
    assert 'name="again"' in preview
    refused = client.post(url, {**data, "confirm": "1"})
    body = refused.content.decode()
    assert refused.status_code == 200
    assert "Nothing was written: confirm again" in body and "Yes, again" in body
    assert LedgerEntry.objects.filter(user=alice).count() == 2
    assert client.post(url, {**data, "confirm": "1", "again": "1"}).status_code == 302
    assert LedgerEntry.objects.filter(user=alice).count() == 3
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("60.00000")
