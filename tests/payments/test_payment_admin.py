"""The payments admin: read-only payments and callbacks with their filters and searches, the
manual transfer's Approve / Reject (with its reason) and the other actions, and the validated
bonus rules and method settings."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from accounts.gateways.base import Report
from accounts.models import (
    AdminAuditLog,
    DepositBonusRule,
    LedgerEntry,
    Payment,
    PaymentCallback,
    PaymentMethodSetting,
    User,
)
from accounts.payments import payment_report_apply
from tests.totp import give_second_factor

from .core_helpers import start_manual

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:accounts_payment_changelist"


@pytest.fixture(autouse=True)
def _manual_only(settings):
    settings.PAYMENT_METHODS = ["manual"]


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def _post_action(client, action, payments, **extra):
    data = {"action": action, "_selected_action": [str(p.pk) for p in payments], **extra}
    return client.post(reverse(CHANGELIST), data)


def _credits(user):
    return LedgerEntry.objects.filter(user=user, payment_ref__startswith="manual:")


def _listed(response) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


def test_changelist_filters_and_searches(staff_client, alice, bob):
    waiting = start_manual(alice, "20.00", "ALICE-REF-77")
    other = start_manual(bob, "30.00", "BOB-1")
    flagged = Payment.objects.create(
        user=bob,
        method="stripe",
        amount=Decimal("9"),
        currency="USD",
        gateway_id="cs_test_flagged",
        status=Payment.Status.DISPUTED,
        needs_attention=True,
    )
    url = reverse(CHANGELIST)
    assert _listed(staff_client.get(url)) == {waiting.pk, other.pk, flagged.pk}
    assert _listed(staff_client.get(url, {"method": "stripe"})) == {flagged.pk}
    assert _listed(staff_client.get(url, {"status__exact": "pending"})) == {waiting.pk, other.pk}
    assert _listed(staff_client.get(url, {"needs_attention__exact": "1"})) == {flagged.pk}
    assert _listed(staff_client.get(url, {"attention": "disputed"})) == {flagged.pk}
    assert _listed(staff_client.get(url, {"attention": "manual"})) == {waiting.pk, other.pk}
    yesterday = f"{(timezone.now() - datetime.timedelta(days=1)).date()} 00:00:00+00:00"
    Payment.objects.filter(pk=other.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=3)
    )
    since = {"created_at__gte": yesterday}
    assert other.pk not in _listed(staff_client.get(url, since))
    for term, expected in [
        ("cs_test_flagged", {flagged.pk}),
        (str(waiting.public_id), {waiting.pk}),
        ("alice", {waiting.pk}),
        ("ALICE-REF", {waiting.pk}),
        ("not-there", set()),
    ]:
        assert _listed(staff_client.get(url, {"q": term})) == expected, term


def test_a_payment_is_read_only_and_shows_its_callbacks_and_ledger(staff_client, alice, staff):
    payment = start_manual(alice, "20.00")
    assert _post_action(staff_client, "approve_manual", [payment], confirm="1").status_code == 302
    page = staff_client.get(reverse("admin:accounts_payment_change", args=[payment.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="amount"' not in html  # no input: shown, not editable
    assert "Deposit by bank transfer (payment #" in html  # its ledger entry
    assert "Staff" in html and "Now paid." in html  # its callback, inline
    assert staff_client.get(reverse("admin:accounts_payment_add")).status_code == 403
    delete = staff_client.post(
        reverse("admin:accounts_payment_delete", args=[payment.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403
    changed = staff_client.post(
        reverse("admin:accounts_payment_change", args=[payment.pk]), {"amount": "999"}
    )
    assert changed.status_code == 403
    payment.refresh_from_db()
    assert payment.amount == Decimal("20.00000")


def test_approve_asks_first_then_credits_once(staff_client, alice, staff):
    payment = start_manual(alice, "20.00", "REF-9")
    asked = _post_action(staff_client, "approve_manual", [payment])
    assert asked.status_code == 200
    assert "Credit $20.00 to the customers below" in asked.content.decode()
    assert "$20.00</td>" in asked.content.decode()
    assert not _credits(alice).exists()
    for _ in range(2):  # a resent confirmation
        done = _post_action(staff_client, "approve_manual", [payment], confirm="1")
        assert done.status_code == 302
    assert [e.amount for e in _credits(alice)] == [Decimal("20.00000")]
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID and payment.reviewed_by == staff
    assert AdminAuditLog.objects.filter(action="approve payment", area="money").count() == 1
    said = staff_client.get(reverse(CHANGELIST)).content.decode()
    assert f"#{payment.pk} was already approved and credited; nothing was credited again." in said


def test_the_detail_pages_buttons_lead_to_the_confirmation(staff_client, alice):
    payment = start_manual(alice)
    page = staff_client.get(reverse("admin:accounts_payment_change", args=[payment.pk]))
    approve = reverse("admin:accounts_payment_decide", args=[payment.pk, "approve"])
    reject = reverse("admin:accounts_payment_decide", args=[payment.pk, "reject"])
    assert approve in page.content.decode() and reject in page.content.decode()
    asked = staff_client.get(reject)
    assert asked.status_code == 200
    assert 'name="reason"' in asked.content.decode()
    assert f'name="_selected_action" value="{payment.pk}"' in asked.content.decode()
    assert (
        staff_client.get(
            reverse("admin:accounts_payment_decide", args=[payment.pk, "x"])
        ).status_code
        == 403
    )


def test_reject_needs_a_reason_and_keeps_it(staff_client, alice):
    payment = start_manual(alice)
    missing = _post_action(staff_client, "reject_manual", [payment], confirm="1", reason=" ")
    assert missing.status_code == 200
    assert "Say why the transfer is rejected." in missing.content.decode()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    done = _post_action(
        staff_client, "reject_manual", [payment], confirm="1", reason="Nothing arrived"
    )
    assert done.status_code == 302
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED
    assert payment.note.endswith("Nothing arrived")
    assert not _credits(alice).exists()
    assert AdminAuditLog.objects.filter(action="reject payment", area="money").count() == 1


def test_actions_need_the_change_permission(client, alice):
    viewer = User.objects.create_user("viewer", password="pw-viewer-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_payment"))
    give_second_factor(viewer)
    client.force_login(viewer)
    payment = start_manual(alice)
    page = client.get(reverse(CHANGELIST))
    assert page.status_code == 200
    assert "approve_manual" not in page.content.decode()
    _post_action(client, "approve_manual", [payment], confirm="1")
    assert not _credits(alice).exists()
    decide = reverse("admin:accounts_payment_decide", args=[payment.pk, "approve"])
    assert client.get(decide).status_code == 403


def test_mark_attention_handled_clears_the_flag_and_audits(staff_client, alice):
    payment = start_manual(alice)
    wrong = Report(
        gateway_id=payment.gateway_id, status="paid", amount=Decimal("1"), currency="USD"
    )
    payment_report_apply(method="manual", report=wrong, source="webhook")
    payment.refresh_from_db()
    assert payment.needs_attention
    _post_action(staff_client, "mark_attention_handled", [payment])
    payment.refresh_from_db()
    assert not payment.needs_attention
    (audit,) = AdminAuditLog.objects.filter(action="payment attention handled")
    assert audit.area == "money" and audit.before["needs_attention"] is True


def test_check_at_the_gateway_says_what_it_found(staff_client, alice):
    payment = start_manual(alice)
    response = _post_action(staff_client, "check_at_gateway", [payment])
    assert response.status_code == 302
    shown = [str(m) for m in response.wsgi_request._messages]
    assert shown == [f"#{payment.pk}: this gateway cannot be asked"]


def test_callbacks_are_listed_read_only_with_filters(staff_client, alice):
    payment = start_manual(alice)
    payment_report_apply(
        method="manual",
        report=Report(
            gateway_id=payment.gateway_id,
            status="paid",
            amount=payment.total,
            currency=payment.currency,
            event_id="evt_42",
        ),
        source="webhook",
    )
    payment_report_apply(
        method="manual", report=Report(gateway_id="unknown", status="paid"), source="poll"
    )
    url = reverse("admin:accounts_paymentcallback_changelist")
    everything = _listed(staff_client.get(url))
    assert len(everything) == 2
    refused = _listed(staff_client.get(url, {"outcome__exact": "refused"}))
    assert refused == set(
        PaymentCallback.objects.filter(gateway_id="unknown").values_list("pk", flat=True)
    )
    assert len(_listed(staff_client.get(url, {"source__exact": "webhook"}))) == 1
    assert len(_listed(staff_client.get(url, {"method": "manual"}))) == 2
    assert len(_listed(staff_client.get(url, {"q": "evt_42"}))) == 1
    assert len(_listed(staff_client.get(url, {"q": payment.gateway_id}))) == 1
    assert staff_client.get(reverse("admin:accounts_paymentcallback_add")).status_code == 403


def _rule_form(**fields):
    return {
        "name": "Five",
        "method": "",
        "min_amount": "100",
        "percent": "5",
        "is_active": "on",
        "starts_at_0": "",
        "starts_at_1": "",
        "ends_at_0": "",
        "ends_at_1": "",
        **fields,
    }


def test_bonus_rules_are_validated_at_the_field(staff_client):
    url = reverse("admin:accounts_depositbonusrule_add")
    for fields, field, message in [
        ({"percent": "150"}, "percent", "at most 100"),
        ({"percent": "0"}, "percent", "more than 0"),
        ({"min_amount": "-1"}, "min_amount", "cannot be negative"),
        ({"method": "bogus"}, "method", "Select a valid choice"),
        (
            {
                "starts_at_0": "2026-05-02",
                "starts_at_1": "00:00",
                "ends_at_0": "2026-05-01",
                "ends_at_1": "00:00",
            },
            "ends_at",
            "after the start",
        ),
    ]:
        response = staff_client.post(url, _rule_form(**fields))
        assert response.status_code == 200, fields
        errors = response.context["adminform"].form.errors
        assert message in " ".join(errors.get(field, [])), (fields, errors)
        assert response.context["adminform"].form["name"].value() == "Five"  # kept
    assert not DepositBonusRule.objects.exists()
    assert staff_client.post(url, _rule_form(method="stripe")).status_code == 302
    rule = DepositBonusRule.objects.get()
    assert (rule.method, rule.percent) == ("stripe", Decimal("5.00"))
    assert AdminAuditLog.objects.get(action="add").area == "money"


def _method_form(**fields):
    return {
        "method": "manual",
        "is_enabled": "on",
        "display_name": "Bank",
        "min_amount": "5",
        "max_amount": "500",
        "fee_percent": "0",
        "instructions": "IBAN …",
        "position": "0",
        **fields,
    }


def test_method_settings_are_validated_at_the_field(staff_client):
    url = reverse("admin:accounts_paymentmethodsetting_add")
    for fields, field, message in [
        ({"min_amount": "50", "max_amount": "10"}, "max_amount", "cannot be below"),
        ({"fee_percent": "100"}, "fee_percent", "less than 100"),
        ({"fee_percent": "-1"}, "fee_percent", "from 0"),
        ({"min_amount": "0"}, "min_amount", "above zero"),
        ({"method": "perfectmoney"}, "method", "Select a valid choice"),
    ]:
        response = staff_client.post(url, _method_form(**fields))
        assert response.status_code == 200, fields
        errors = response.context["adminform"].form.errors
        assert message in " ".join(errors.get(field, [])), (fields, errors)
    assert not PaymentMethodSetting.objects.exists()
    assert staff_client.post(url, _method_form()).status_code == 302
    assert PaymentMethodSetting.objects.get().max_amount == Decimal("500")
    change = reverse(
        "admin:accounts_paymentmethodsetting_change", args=[PaymentMethodSetting.objects.get().pk]
    )
    assert staff_client.post(change, _method_form(fee_percent="2.5")).status_code == 302
    audit = AdminAuditLog.objects.get(action="change")
    assert audit.area == "money" and audit.after == {"fee_percent": "2.5"}


def test_only_the_payments_the_page_listed_are_decided(staff_client, alice, staff):
    manual = start_manual(alice, "20.00", "M-1")
    card = Payment.objects.create(
        user=alice, method="stripe", amount=Decimal("5"), currency="USD", gateway_id="cs_x"
    )
    page = _post_action(staff_client, "approve_manual", [manual, card])
    html = page.content.decode()
    assert "Credit $20.00" in html and "2 selected: only the 1 listed change" in html
    done = _post_action(staff_client, "approve_manual", [manual, card], confirm="1")
    shown = [str(m) for m in done.wsgi_request._messages]
    assert shown[0] == "1 payments changed."
    assert shown[1] == f"#{card.pk} is not a manual transfer; nothing was changed."
    card.refresh_from_db()
    assert card.status == Payment.Status.CREATED
    assert _credits(alice).count() == 1


def test_a_paid_transfer_cannot_be_rejected_and_a_rejected_one_can_be_approved(staff_client, alice):
    paid, rejected = start_manual(alice, "20.00", "P"), start_manual(alice, "30.00", "R")
    _post_action(staff_client, "approve_manual", [paid], confirm="1")
    page = _post_action(staff_client, "reject_manual", [paid])
    assert "None of the selected payments is a manual transfer that can be rejected" in (
        page.content.decode()
    )
    _post_action(staff_client, "reject_manual", [paid], confirm="1", reason="late")
    paid.refresh_from_db()
    assert paid.status == Payment.Status.PAID
    _post_action(staff_client, "reject_manual", [rejected], confirm="1", reason="not seen")
    detail = staff_client.get(reverse("admin:accounts_payment_change", args=[rejected.pk]))
    html = detail.content.decode()
    assert "Approve (credit $30.00)" in html and "Reject…" not in html
    _post_action(staff_client, "approve_manual", [rejected], confirm="1")
    assert sorted(e.amount for e in _credits(alice)) == [Decimal("20.00000"), Decimal("30.00000")]


def test_the_attention_column_is_a_warning_not_a_green_tick(staff_client, alice):
    flagged, calm = start_manual(alice, "20.00", "F"), start_manual(alice, "30.00", "C")
    Payment.objects.filter(pk=flagged.pk).update(needs_attention=True)
    html = staff_client.get(reverse(CHANGELIST)).content.decode()
    rows = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert "icon-yes" not in rows and "icon-no" not in rows
    assert rows.count("⚠ Check") == 1
    assert calm.pk != flagged.pk


def test_a_manual_transfer_does_not_expire(alice):
    assert start_manual(alice).expires_at is None
