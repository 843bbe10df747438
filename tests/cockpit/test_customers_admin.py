import re
from decimal import Decimal

import pytest
from django.contrib.admin.sites import site
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import AdminAuditLog, ApiKey
from accounts.selectors import api_key_get_user
from accounts.services import api_key_issue, customer_create
from catalog.models import CustomerDiscount, CustomerRate
from orders.models import Order
from orders.services import order_create, order_set_status

from .conftest import make_order

pytestmark = pytest.mark.django_db


def _action(client, action, ids, url_name="admin:accounts_user_changelist"):
    return client.post(
        reverse(url_name), {"action": action, "_selected_action": [str(i) for i in ids]}
    )


def _row_cells(body: str, username: str) -> dict[str, str]:
    """The cells of `username`'s row in the change list, by column (field-<name>)."""
    row = next(r for r in body.split("<tr") if f">{username}<br>" in r)
    return dict(re.findall(r'<td class="field-([a-z_]+)[^"]*">(.*?)</td>', row))


def test_customer_list_shows_spent_orders_and_key_status_from_the_wallet(
    client, staff, world, alice, bob, django_assert_max_num_queries
):
    likes = world["s_likes"]  # 1.50 per 1000
    link = {"link": "https://instagram.com/p/spent"}
    order_create(user=alice, service=likes, data={**link, "quantity": "1234"})  # 1.851
    partial = order_create(user=alice, service=likes, data={**link, "quantity": "4000"})  # 6.00
    order_set_status(order=partial, new=Order.Status.PENDING, source="admin")
    order_set_status(order=partial, new=Order.Status.PARTIAL, remains=1000, source="admin")
    api_key_issue(user=bob)
    client.force_login(staff)
    client.get(reverse("admin:accounts_user_changelist"))
    with django_assert_max_num_queries(8):
        response = client.get(reverse("admin:accounts_user_changelist"))
    body = response.content.decode()
    # Charges net of the 1.50 refunded, no trailing zeros past 2 places; the currency heads
    # the column.
    alice_row, bob_row = _row_cells(body, "alice"), _row_cells(body, "bob")
    assert (alice_row["total_spent"], alice_row["order_count"]) == ("$6.351", "2")
    assert alice_row["balance_display"] == "$43.649"
    assert (bob_row["total_spent"], bob_row["order_count"]) == ("$0.00", "0")
    assert "Total spent" in body and "Balance" in body
    assert f"{bob.api_key.prefix}… active" in body
    assert bob.api_key.key_hash not in body


def test_customer_list_query_count_does_not_grow_with_customers_or_orders(
    client, staff, world, alice
):
    make_order(alice, world["s_likes"], charge="2", cost="1", created_at=timezone.now())
    client.force_login(staff)
    url = reverse("admin:accounts_user_changelist")
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for i in range(30):
        customer = customer_create(
            username=f"many{i:02}", email=f"many{i}@example.com", password="pw-many-123"
        )
        api_key_issue(user=customer)
        for _ in range(3):
            make_order(
                customer, world["s_views"], charge="1", cost="0.5", created_at=timezone.now()
            )
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)
    assert len(response.context["cl"].result_list) == 32  # alice, staff and 30 more
    assert len(many.captured_queries) == len(few.captured_queries)


def test_customer_page_has_rates_discount_key_status_and_recent_ledger(client, staff, world, alice):
    api_key_issue(user=alice)
    CustomerRate.objects.create(user=alice, service=world["s_likes"], rate=Decimal("1.1"))
    CustomerDiscount.objects.create(user=alice, percent=Decimal("5"))
    client.force_login(staff)
    body = client.get(reverse("admin:accounts_user_change", args=[alice.pk])).content.decode()
    assert "custom rates" in body.lower() and "1.10000000" in body
    assert "5.00" in body and "API key" in body and "never" in body
    assert "Opening balance" in body and "The whole ledger of this customer" in body
    assert alice.api_key.key_hash not in body


def test_suspend_and_unsuspend_customers_with_audit(client, staff, alice, bob):
    key = api_key_issue(user=alice)
    client.force_login(staff)
    response = _action(client, "suspend_customers", [alice.pk, staff.pk])
    assert response.status_code == 302
    alice.refresh_from_db()
    staff.refresh_from_db()
    assert not alice.is_active and staff.is_active  # never yourself
    assert api_key_get_user(raw_key=key.raw) is None  # a suspended customer's key stops working
    rows = AdminAuditLog.objects.filter(action="suspend")
    assert {(r.object_id, r.actor_id, r.area) for r in rows} == {
        (str(alice.pk), staff.pk, "access"),
        (str(staff.pk), staff.pk, "access"),
    }
    assert rows.first().after == {"suspended": 1}
    _action(client, "unsuspend_customers", [alice.pk])
    alice.refresh_from_db()
    assert alice.is_active
    assert AdminAuditLog.objects.filter(action="unsuspend", object_id=str(alice.pk)).exists()
    assert api_key_get_user(raw_key=key.raw) == alice


def test_disable_and_enable_api_keys_from_customers_and_keys(client, staff, alice):
    key = api_key_issue(user=alice)
    client.force_login(staff)
    _action(client, "disable_api_keys", [alice.pk])
    assert not ApiKey.objects.get(user=alice).is_active
    assert api_key_get_user(raw_key=key.raw) is None
    assert AdminAuditLog.objects.filter(action="disable_api_key", object_id=str(alice.pk)).exists()
    _action(client, "enable_keys", [alice.api_key.pk], "admin:accounts_apikey_changelist")
    assert ApiKey.objects.get(user=alice).is_active
    assert AdminAuditLog.objects.filter(
        action="enable_api_key", object_type="accounts.apikey"
    ).exists()


def test_manual_balance_change_goes_to_ledger_and_audit(client, staff, alice):
    client.force_login(staff)
    client.post(
        reverse("admin:accounts_user_balance", args=[alice.pk]),
        {"direction": "debit", "amount": "7.5", "reason": "Chargeback 42", "confirm": "1"},
    )
    audit = AdminAuditLog.objects.get(action="balance_adjust")
    assert (audit.area, audit.actor, audit.object_id) == ("money", staff, str(alice.pk))
    assert audit.before == {"balance": "50.00000"}
    assert audit.after["balance"] == "42.50000"
    assert "Chargeback 42" in audit.summary


def test_refused_balance_change_writes_no_audit(client, staff, alice):
    client.force_login(staff)
    client.post(
        reverse("admin:accounts_user_balance", args=[alice.pk]),
        {"direction": "debit", "amount": "500", "reason": "x", "confirm": "1"},
    )
    assert not AdminAuditLog.objects.exists()


def test_audited_admin_mixin_records_changes_with_before_and_after(client, staff, alice):
    client.force_login(staff)
    url = reverse("admin:accounts_user_change", args=[alice.pk])
    form = client.get(url).context["adminform"].form
    data = {
        k: v
        for k, v in form.initial.items()
        if v is not None
        and k not in ("password", "groups", "user_permissions", "last_login", "date_joined")
    }
    data.update(
        {
            "email": "alice@new.example",
            "is_active": "on",
            "discount-TOTAL_FORMS": "0",
            "discount-INITIAL_FORMS": "0",
            "custom_rates-TOTAL_FORMS": "0",
            "custom_rates-INITIAL_FORMS": "0",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, (
        response.context["adminform"].form.errors if response.context else ""
    )
    audit = AdminAuditLog.objects.get(action="change")
    assert audit.before == {"email": "alice@example.com"} and audit.after == {
        "email": "alice@new.example"
    }
    assert audit.object_type == "accounts.user" and audit.actor == staff


def test_audit_log_admin_is_read_only(client, staff, alice):
    entry = audit_record(
        actor=staff, action="note", obj=alice, summary="checked", before={"a": Decimal("1.5")}
    )
    assert entry.before == {"a": "1.5"}
    client.force_login(staff)
    listing = client.get(reverse("admin:accounts_adminauditlog_changelist"))
    assert listing.status_code == 200 and "checked" in listing.content.decode()
    model_admin = site._registry[AdminAuditLog]
    request = RequestFactory().get("/")
    request.user = staff
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, entry)
    assert not model_admin.has_delete_permission(request, entry)
    with pytest.raises(ValueError, match="append-only"):
        entry.save()


def test_audited_admin_mixin_records_deletions(client, staff, alice):
    api_key_issue(user=alice)
    client.force_login(staff)
    url = reverse("admin:accounts_apikey_delete", args=[alice.api_key.pk])
    assert client.post(url, {"post": "yes"}).status_code == 302
    audit = AdminAuditLog.objects.get(action="delete")
    assert (audit.object_type, audit.area, audit.actor) == ("accounts.apikey", "access", staff)
    assert audit.before["key_hash"] == "(hidden)" and audit.before["user"] == alice.pk


def test_a_suspend_of_a_huge_selection_is_summed_up_in_one_audit_row(
    client, staff, alice, bob, monkeypatch
):
    from accounts import audit

    monkeypatch.setattr(audit, "PER_OBJECT_LIMIT", 1)
    client.force_login(staff)
    _action(client, "suspend_customers", [alice.pk, bob.pk])
    row = AdminAuditLog.objects.get(action="suspend")
    assert row.object_id == "" and "more than 1" in row.summary and row.after == {"suspended": 2}


def test_order_page_says_in_words_whether_the_order_failed_over(client, staff, world, alice):
    """Not the model's ✗ beside its help text, which read "Failed over ✗ Placed at a backup
    mapping" on an order that was not."""
    order = make_order(alice, world["s_likes"], charge="2", cost="1", created_at=timezone.now())
    client.force_login(staff)
    url = reverse("admin:orders_order_change", args=[order.pk])
    body = client.get(url).content.decode()
    assert "No: placed at the service&#x27;s own mapping" in body
    assert "Placed at a backup mapping" not in body
    Order.objects.filter(pk=order.pk).update(failed_over=True)
    body = client.get(url).content.decode()
    assert "Yes: placed at a backup mapping" in body
