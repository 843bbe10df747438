"""The customer's referral page (figures, transfer, payout request: errors at the field, what
was typed kept) and the referrals admin (the referrer on the customer's page, changed by staff
only and audited, loops refused; commissions by state; payouts approved or rejected)."""

import re
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts.models import (
    AdminAuditLog,
    Commission,
    LedgerEntry,
    PayoutRequest,
    Referral,
    ReferralVisit,
    ReferrerAccount,
)
from accounts.referrals import commission_release_due, payout_request_create, referrer_account_get

from .referral_helpers import assert_books_clean, make_due, paid_deposit, referred_customer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _setup(settings):
    settings.PAYMENT_METHODS = ["manual"]
    cache.clear()


def _with_commission(alice, staff) -> None:
    """alice referred carol (paid 400, released: 20 available) and dave (paid 100, held: 5)."""
    paid_deposit(referred_customer(alice), staff, "400.00")
    make_due(*Commission.objects.all())
    commission_release_due()
    paid_deposit(referred_customer(alice, "dave"), staff, "100.00")
    referred_customer(alice, "erin")  # signed up, never paid


def _figure(body: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}">([^<]*)<', body)
    assert match, testid
    return match.group(1).strip()


def test_the_page_needs_a_login(client):
    response = client.get(reverse("referrals"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_the_page_shows_the_link_and_the_figures(client, alice, staff):
    _with_commission(alice, staff)
    ReferralVisit.objects.create(referrer=ReferrerAccount.objects.get(user=alice))
    client.force_login(alice)
    body = client.get(reverse("referrals")).content.decode()
    code = referrer_account_get(user=alice).code
    assert f'value="http://testserver/r/{code}"' in body and "data-copy=" in body
    assert "5 % of each deposit" in body
    figures = {t: _figure(body, t) for t in ("visits", "signups", "paying", "held", "available")}
    assert figures == {
        "visits": "1",
        "signups": "3",
        "paying": "2",
        "held": "$5.00",
        "available": "$20.00",
    }
    # Each commission with its state; a referred customer shows as the name's first letters.
    assert "Held until" in body and "Released" in body
    assert "da…" in body and "dave" not in body


def test_a_transfer_moves_commission_to_the_balance(client, alice, staff):
    _with_commission(alice, staff)
    client.force_login(alice)
    page = client.get(reverse("referrals")).content.decode()
    token = re.search(r'name="transfer-token" value="([^"]+)"', page).group(1)
    response = client.post(
        reverse("referral_transfer"), {"transfer-amount": "12.50", "transfer-token": token}
    )
    assert response.status_code == 302
    again = client.post(
        reverse("referral_transfer"), {"transfer-amount": "12.50", "transfer-token": token}
    )
    assert again.status_code == 302  # the same form sent twice: moved once
    entry = LedgerEntry.objects.get(user=alice, kind="commission")
    assert entry.amount == Decimal("12.50000")
    body = client.get(reverse("referrals")).content.decode()
    assert _figure(body, "available") == "$7.50" and _figure(body, "transferred") == "$12.50"
    assert "$12.50 moved to your balance" in body
    assert_books_clean()


def test_a_transfer_over_what_is_available_says_so_at_the_field(client, alice, staff):
    _with_commission(alice, staff)
    client.force_login(alice)
    response = client.post(
        reverse("referral_transfer"), {"transfer-amount": "20.01", "transfer-token": "t" * 32}
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "id_transfer-amount_error" in body and "Only $20.00" in body
    assert 'value="20.01"' in body  # what was typed stays
    assert not LedgerEntry.objects.filter(user=alice, kind="commission").exists()


def test_a_payout_request_below_the_minimum_keeps_what_was_typed(client, alice, staff):
    _with_commission(alice, staff)
    client.force_login(alice)
    data = {"payout-amount": "5", "payout-details": "TRC20 TXabc"}
    response = client.post(reverse("referral_payout"), data)
    assert response.status_code == 400
    body = response.content.decode()
    assert "id_payout-amount_error" in body and "The smallest payout is $10.00" in body
    assert "TRC20 TXabc" in body and 'value="5"' in body
    response = client.post(
        reverse("referral_payout"), {"payout-amount": "15.5", "payout-details": "TRC20 T1"}
    )
    assert response.status_code == 302
    body = client.get(reverse("referrals")).content.decode()
    assert _figure(body, "pending") == "$15.50" and _figure(body, "available") == "$4.50"
    assert "Waiting for staff" in body


# --- admin ------------------------------------------------------------------------------------


def test_the_customer_admin_shows_the_referrer(client, alice, staff):
    carol = referred_customer(alice)
    client.force_login(staff)
    body = client.get(reverse("admin:accounts_user_change", args=[carol.pk])).content.decode()
    assert "Referred by" in body or "referred by" in body
    assert reverse("admin:accounts_referral_change", args=[carol.referral.pk]) in body
    body = client.get(reverse("admin:accounts_user_change", args=[alice.pk])).content.decode()
    assert "referred" in body and "1 customer<" in body


def test_staff_change_the_referrer_in_admin_audited_loops_refused(client, alice, bob, staff):
    carol = referred_customer(alice)
    referral = carol.referral
    client.force_login(staff)
    url = reverse("admin:accounts_referral_change", args=[referral.pk])
    response = client.post(url, {"referrer": bob.pk})
    assert response.status_code == 302
    assert Referral.objects.get(referred=carol).referrer == bob
    row = AdminAuditLog.objects.get(action="set referrer")
    assert row.actor == staff and row.after == {"referrer": bob.pk}
    add = reverse("admin:accounts_referral_add")
    response = client.post(add, {"referred": bob.pk, "referrer": carol.pk})  # bob → carol → bob
    assert response.status_code == 200 and "loop" in response.content.decode()
    assert not Referral.objects.filter(referred=bob).exists()


def test_commissions_filter_by_state_and_the_flag_is_cleared_audited(client, alice, staff):
    _with_commission(alice, staff)
    Commission.objects.filter(state="released").update(needs_attention=True)
    client.force_login(staff)
    url = reverse("admin:accounts_commission_changelist")
    held = client.get(url, {"state__exact": "held"}).context["cl"].result_list
    assert [c.state for c in held] == ["held"]
    released = Commission.objects.get(state="released")
    response = client.post(
        url, {"action": "mark_attention_handled", "_selected_action": [released.pk]}
    )
    assert response.status_code == 302
    assert not Commission.objects.get(pk=released.pk).needs_attention
    assert AdminAuditLog.objects.filter(action="commission attention handled").count() == 1


def test_staff_approve_and_reject_payouts_in_admin(client, alice, staff):
    _with_commission(alice, staff)
    first = payout_request_create(user=alice, amount=Decimal("10"), details="T1")
    second = payout_request_create(user=alice, amount=Decimal("10"), details="T2")
    client.force_login(staff)
    url = reverse("admin:accounts_payoutrequest_changelist")
    response = client.post(url, {"action": "approve_payouts", "_selected_action": [first.pk]})
    assert response.status_code == 302
    reject = {"action": "reject_payouts", "_selected_action": [second.pk]}
    page = client.post(url, reject)
    assert page.status_code == 200 and "Reason" in page.content.decode()
    response = client.post(url, {**reject, "confirm": "1", "reason": ""})
    assert "Say why the payout is rejected" in response.content.decode()
    response = client.post(url, {**reject, "confirm": "1", "reason": "Unknown wallet"})
    assert response.status_code == 302
    states = dict(PayoutRequest.objects.values_list("pk", "state"))
    assert states == {first.pk: "paid", second.pk: "rejected"}
    account = ReferrerAccount.objects.get(user=alice)
    assert (account.available, account.paid_out) == (Decimal("10.00000"), Decimal("10.00000"))
    body = Client()
    body.force_login(alice)
    assert "Unknown wallet" in body.get(reverse("referrals")).content.decode()
    assert_books_clean()


def test_staff_set_the_rate_in_admin_audited(client, staff):
    from accounts.models import ReferralProgram

    ReferralProgram.objects.all().delete()
    client.force_login(staff)
    body = client.get(reverse("admin:accounts_referralprogram_changelist")).content.decode()
    assert "Referral programme (5.00 %)" in body  # made again for staff to edit
    url = reverse("admin:accounts_referralprogram_change", args=[1])
    response = client.post(url, {"commission_percent": "7.5", "is_active": "on"})
    assert response.status_code == 302
    assert ReferralProgram.objects.get().commission_percent == Decimal("7.50")
    row = AdminAuditLog.objects.get(action="change", object_type="accounts.referralprogram")
    assert row.after == {"commission_percent": "7.5"} and row.area == "money"
    response = client.post(url, {"commission_percent": "120", "is_active": "on"})
    assert response.status_code == 200 and "commission_percent" in response.content.decode()
