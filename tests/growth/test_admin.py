"""The tiers and coupons admin: validated forms (errors at the field), codes stored upper-case
and unique in any case, usage and customers counted in the lists, codes generated in bulk, and
every change audited."""

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.coupons import coupon_redeem
from accounts.models import AdminAuditLog, Coupon, LedgerEntry, Tier
from accounts.services import balance_debit

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def coupon_data(**fields):
    return {
        "code": "spring",
        "kind": "deposit",
        "bonus_type": "percent",
        "value": "10",
        "min_deposit": "0",
        "max_uses": "",
        "max_uses_per_customer": "1",
        "is_active": "on",
        "note": "",
        "coupon_uses-TOTAL_FORMS": "0",
        "coupon_uses-INITIAL_FORMS": "0",
        **fields,
    }


def test_tiers_are_validated_listed_with_their_customers_and_audited(staff_client, alice, bob):
    url = reverse("admin:accounts_tier_add")
    bad = staff_client.post(url, {"name": "Gold", "min_spent": "-1", "discount_percent": "100"})
    assert bad.status_code == 200
    errors = bad.context["adminform"].form.errors
    assert "cannot be negative" in str(errors["min_spent"])
    assert "less than 100" in str(errors["discount_percent"])
    for name, low, pct in (("Bronze", "0", "0"), ("Silver", "10", "5")):
        answer = staff_client.post(url, {"name": name, "min_spent": low, "discount_percent": pct})
        assert answer.status_code == 302
    assert AdminAuditLog.objects.filter(action="add", area="price").count() == 2
    balance_debit(user=alice, amount=D("12"), kind=LedgerEntry.Kind.CHARGE)
    page = staff_client.get(reverse("admin:accounts_tier_changelist"))
    rows = {t.name: page.context["cl"].model_admin.customers(t) for t in Tier.objects.all()}
    assert rows == {"Bronze": 1, "Silver": 1}  # bob (and staff, without a wallet: none)


def test_coupon_codes_are_upper_case_unique_in_any_case_and_checked(staff_client):
    url = reverse("admin:accounts_coupon_add")
    assert staff_client.post(url, coupon_data()).status_code == 302
    assert Coupon.objects.get().code == "SPRING"
    again = staff_client.post(url, coupon_data(code="Spring"))
    assert "exists already" in str(again.context["adminform"].form.errors["code"])
    bad = staff_client.post(
        url, coupon_data(code="gift 1", kind="balance", value="150", min_deposit="5")
    )
    errors = bad.context["adminform"].form.errors
    assert "letters, digits" in str(errors["code"])
    assert "fixed amount" in str(errors["bonus_type"])
    assert "at most 100" in str(errors["value"])
    assert "Only deposit codes" in str(errors["min_deposit"])
    assert Coupon.objects.count() == 1


def test_the_coupon_list_shows_usage_and_generates_codes_in_bulk(staff_client, alice, bob):
    gift = Coupon.objects.create(
        code="GIFT", kind="balance", bonus_type="fixed", value=D("5"), max_uses=10
    )
    coupon_redeem(user=alice, code="gift")
    coupon_redeem(user=bob, code="gift")
    changelist = reverse("admin:accounts_coupon_changelist")
    assert "2 / 10" in staff_client.get(changelist).content.decode()
    answer = staff_client.post(
        changelist,
        {
            "action": "generate_like",
            "_selected_action": [str(gift.pk)],
            "count": "25",
            "code_prefix": "xmas",
        },
        follow=True,
    )
    assert "25 codes made" in answer.content.decode()
    made = Coupon.objects.filter(code__startswith="XMAS")
    assert made.count() == 25 and {c.value for c in made} == {D("5")}
    assert AdminAuditLog.objects.filter(action="generate coupons", area="money").exists()
    limit = staff_client.post(
        reverse("admin:accounts_coupon_change", args=[gift.pk]),
        coupon_data(code="GIFT", kind="balance", bonus_type="fixed", value="5", max_uses="1"),
    )
    assert "used 2 times already" in str(limit.context["adminform"].form.errors["max_uses"])
