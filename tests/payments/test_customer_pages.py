"""The customer's Add funds page and a payment's page: errors at the field with nothing typed
lost, the recent payments, the cancel URL, no method configured, and one customer never sees
or cancels another's payment."""

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils.html import escape

from accounts.models import Payment, PaymentCallback, PaymentMethodSetting
from accounts.payments import payment_reject_manual

from .core_helpers import start_manual

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _manual_only(settings):
    settings.PAYMENT_METHODS = ["manual"]


def test_another_customers_payment_is_404_and_cannot_be_canceled(client, alice, bob):
    payment = start_manual(alice)
    client.force_login(bob)
    url = reverse("payment_detail", args=[payment.public_id])
    assert client.get(url).status_code == 404
    assert client.get(url + "?canceled=1").status_code == 404
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    client.force_login(alice)
    page = client.get(url)
    assert page.status_code == 200 and "TR-1" in page.content.decode()


def test_the_cancel_url_changes_nothing_and_only_says_so(client, alice):
    payment = start_manual(alice)
    client.force_login(alice)
    url = reverse("payment_detail", args=[payment.public_id]) + "?canceled=1"
    html = client.get(url).content.decode()
    assert "You left the checkout. If you paid, this page shows it" in html
    assert "nothing was charged" not in html.lower()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert not PaymentCallback.objects.filter(payment=payment).exists()


def test_the_customer_cancels_a_waiting_payment_by_post_recorded(client, alice):
    payment = start_manual(alice)
    client.force_login(alice)
    page = reverse("payment_detail", args=[payment.public_id])
    assert 'action="' + reverse("payment_cancel", args=[payment.public_id]) in (
        client.get(page).content.decode()
    )
    cancel = reverse("payment_cancel", args=[payment.public_id])
    assert client.get(cancel).status_code == 405  # a GET changes nothing
    answer = client.post(cancel, follow=True)
    assert "You canceled this payment." in answer.content.decode()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CANCELED
    record = PaymentCallback.objects.get(payment=payment)
    assert record.source == PaymentCallback.Source.RETURN
    assert record.outcome == PaymentCallback.Outcome.APPLIED
    assert record.payload["action"] == "cancel" and record.payload["by"] == "alice"
    again = client.post(cancel, follow=True).content.decode()
    assert "You canceled this payment." not in again
    assert PaymentCallback.objects.filter(payment=payment).count() == 2  # the repeat recorded


def test_a_canceled_payment_paid_late_is_still_credited(client, alice, staff):
    from accounts.payments import payment_approve_manual

    before = alice.balance
    payment = start_manual(alice)
    client.force_login(alice)
    client.post(reverse("payment_cancel", args=[payment.public_id]))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CANCELED
    payment_approve_manual(payment=payment, actor=staff)
    payment.refresh_from_db()
    alice.refresh_from_db()
    assert payment.status == Payment.Status.PAID and alice.balance == before + Decimal("20.00")


def test_another_customer_cannot_cancel_by_post(client, alice, bob):
    payment = start_manual(alice)
    client.force_login(bob)
    assert client.post(reverse("payment_cancel", args=[payment.public_id])).status_code == 404
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_a_paid_payment_is_not_canceled_by_the_cancel_url(client, alice, staff):
    from accounts.payments import payment_approve_manual

    payment = start_manual(alice)
    payment_approve_manual(payment=payment, actor=staff)
    client.force_login(alice)
    client.get(reverse("payment_detail", args=[payment.public_id]) + "?canceled=1")
    client.post(reverse("payment_cancel", args=[payment.public_id]))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID


def test_errors_are_at_the_field_and_nothing_typed_is_lost(client, alice):
    PaymentMethodSetting.objects.create(method="manual", min_amount=Decimal("10"))
    client.force_login(alice)
    url = reverse("funds_add")
    below = client.post(url, {"method": "manual", "amount": "5", "reference": "SEPA-123"})
    assert below.status_code == 400
    form = below.context["form"]
    assert form.errors["amount"] == [
        "The smallest amount for Bank transfer (confirmed by staff) is $10.00."
    ]
    html = below.content.decode()
    assert 'value="SEPA-123"' in html and 'value="5"' in html
    assert 'aria-describedby="amount-error"' in html
    both = client.post(url, {"method": "manual", "amount": "5", "reference": ""})
    assert sorted(both.context["form"].errors) == ["amount", "reference"]  # both at once
    no_ref = client.post(url, {"method": "manual", "amount": "25.50", "reference": ""})
    assert list(no_ref.context["form"].errors) == ["reference"]
    assert 'value="25.50"' in no_ref.content.decode()
    assert 'aria-describedby="reference-error"' in no_ref.content.decode()
    bad = client.post(url, {"method": "manual", "amount": "1.234", "reference": "X"})
    assert bad.context["form"].errors["amount"] == ["Use at most 2 decimals."]
    assert not Payment.objects.exists()


def test_a_switched_off_method_is_refused_at_the_method(client, alice):
    client.force_login(alice)
    PaymentMethodSetting.objects.create(method="manual", is_enabled=False)
    page = client.post(reverse("funds_add"), {"method": "manual", "amount": "20", "reference": "X"})
    assert "No payment method is set up yet" in page.content.decode()
    assert not Payment.objects.exists()


def test_no_method_configured_says_so(client, alice, settings):
    settings.PAYMENT_METHODS = []
    client.force_login(alice)
    html = client.get(reverse("funds_add")).content.decode()
    assert "No payment method is set up yet" in html
    assert '<form method="post" class="card' not in html


def test_the_recent_payments_are_the_customers_own_with_the_methods_name(client, alice, bob):
    mine = start_manual(alice, "20.00", "MINE")
    start_manual(bob, "30.00", "THEIRS")
    client.force_login(alice)
    html = client.get(reverse("funds_add")).content.decode()
    assert reverse("payment_detail", args=[mine.public_id]) in html
    assert "30.00" not in html.split("Your latest payments", 1)[1]
    assert '<div class="small text-body-secondary">Bank transfer (confirmed by staff)</div>' in html


def test_a_rejected_transfer_says_so_without_the_staff_members_name(client, alice, staff):
    payment = start_manual(alice, reference="REF-77")
    payment_reject_manual(payment=payment, actor=staff, reason="No money on the account")
    client.force_login(alice)
    html = client.get(reverse("payment_detail", args=[payment.public_id])).content.decode()
    assert "Staff could not confirm your transfer" in html and "REF-77" in html
    assert "staff:" not in html.lower() and "Rejected by" not in html


def _report(payment, status, amount, attention=""):
    from accounts.gateways.base import Report
    from accounts.payments import payment_report_apply

    report = Report(
        gateway_id=payment.gateway_id,
        status=status,
        amount=Decimal(amount),
        currency=payment.currency,
        reference=str(payment.public_id),
        event_id=f"e-{status}-{amount}",
        attention=attention,
    )
    return payment_report_apply(method=payment.method, report=report, source="webhook")


def _page(client, user, payment):
    client.force_login(user)
    return client.get(reverse("payment_detail", args=[payment.public_id])).content.decode()


STAFF_WORDS = "credit what arrived by a balance adjustment"


def test_an_underpaid_failed_payment_says_what_was_received_not_nothing_charged(client, alice):
    payment = start_manual(alice)
    _report(payment, "failed", "8.00", attention=f"Underpaid: ... {STAFF_WORDS}")
    html = _page(client, alice, payment)
    assert "We received $8.00 of the $20.00 asked" in html
    assert "staff have been told and will credit or refund it" in html.lower()
    assert "Nothing was charged" not in html and "Staff could not confirm" not in html
    assert STAFF_WORDS not in html


def test_a_paid_report_below_the_total_is_shown_as_received_short(client, alice):
    payment = start_manual(alice)
    _report(payment, "paid", "15.00")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING and payment.needs_attention
    html = _page(client, alice, payment)
    assert "We received $15.00 of the $20.00" in html
    assert "Cancel this payment" not in html


def test_an_overpaid_payment_says_the_extra_was_received(client, alice):
    payment = start_manual(alice)
    _report(payment, "paid", "25.00")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID and payment.needs_attention
    html = _page(client, alice, payment)
    assert "were added to your balance" in html
    assert "$5.00 more than the $20.00 asked" in html
    assert "staff have been told and will settle it" in html


@pytest.mark.parametrize(("typed", "amount"), [("1,5", "1.50"), ("1.5", "1.50"), (" 25 ", "25.00")])
def test_amounts_typed_with_a_comma_or_a_point_are_read_as_decimals(typed, amount):
    from accounts.payments import parse_deposit_amount

    assert parse_deposit_amount(typed) == Decimal(amount)


FORMAT = "Use digits and one decimal point, e.g. 25 or 25.50"


@pytest.mark.parametrize("typed", ["1,000", "1.000,50", "1 000", "1e3", "1'000", "abc", "1..5"])
def test_thousand_separators_and_exponents_are_refused_at_the_field(client, alice, typed):
    PaymentMethodSetting.objects.create(method="manual", min_amount=Decimal("1"))
    client.force_login(alice)
    page = client.post(
        reverse("funds_add"), {"method": "manual", "amount": typed, "reference": "R-9"}
    )
    assert page.status_code == 400
    assert [e.startswith(FORMAT) for e in page.context["form"].errors["amount"]] == [True]
    html = page.content.decode()
    assert f'value="{escape(typed)}"' in html and 'value="R-9"' in html
    assert not Payment.objects.exists()


def test_the_amount_input_is_text_with_a_decimal_keyboard(client, alice):
    client.force_login(alice)
    html = client.get(reverse("funds_add")).content.decode()
    amount = html.split('name="amount"', 1)[0].rsplit("<input", 1)[1]
    assert 'type="text"' in amount and 'inputmode="decimal"' in amount
    assert 'type="number"' not in amount


@pytest.mark.parametrize("typed", ["0", "-5", "0.00"])
def test_zero_and_negative_amounts_get_the_limits_message(client, alice, typed):
    PaymentMethodSetting.objects.create(method="manual", min_amount=Decimal("1000"))
    client.force_login(alice)
    page = client.post(
        reverse("funds_add"), {"method": "manual", "amount": typed, "reference": "R"}
    )
    assert page.context["form"].errors["amount"] == [
        "The smallest amount for Bank transfer (confirmed by staff) is $1,000.00."
    ]
    assert "From $1,000.00 to" in page.content.decode()  # the page formats it the same way


def test_no_method_chosen_says_choose_one(client, alice, settings):
    settings.PAYMENT_METHODS = ["manual", "stripe"]
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_x"
    client.force_login(alice)
    page = client.post(reverse("funds_add"), {"amount": "20", "reference": "R"})
    assert page.context["form"].errors["method"] == ["Choose a payment method."]


def test_a_method_with_a_fee_says_so_without_javascript(client, alice):
    PaymentMethodSetting.objects.create(method="manual", fee_percent=Decimal("3"))
    client.force_login(alice)
    html = client.get(reverse("funds_add")).content.decode()
    help_text = html.split('id="method-manual-help">', 1)[1].split("</div>", 1)[0]
    assert "fee 3 % on top" in help_text
    assert 'data-fee-percent="3"' in html and "<script>" not in html


def test_the_start_limit_says_when_to_try_again(client, alice, settings):
    from django.core.cache import cache

    cache.delete(f"payment-start:{alice.pk}")
    settings.PAYMENT_STARTS_PER_HOUR = 1
    client.force_login(alice)
    url = reverse("funds_add")
    first = client.post(url, {"method": "manual", "amount": "20", "reference": "A"})
    assert first.status_code == 302
    second = client.post(url, {"method": "manual", "amount": "20", "reference": "B"})
    errors = second.context["form"].non_field_errors() + second.context["form"].errors.get(
        "amount", []
    )
    assert errors == ["Too many payments started in the last hour; try again in 60 minutes."]
    cache.delete(f"payment-start:{alice.pk}")


NO_DETAILS = "Staff have not put the transfer details here yet"


def test_manual_without_instructions_says_to_ask_for_the_details_first(client, alice):
    client.force_login(alice)
    html = client.get(reverse("funds_add")).content.decode()
    assert NO_DETAILS in html
    payment = start_manual(alice)
    page = client.get(reverse("payment_detail", args=[payment.public_id])).content.decode()
    assert NO_DETAILS in page


def test_the_waiting_transfer_page_repeats_the_instructions(client, alice):
    PaymentMethodSetting.objects.create(method="manual", instructions="IBAN DE00 1234\nBIC XYZ")
    client.force_login(alice)
    assert NO_DETAILS not in client.get(reverse("funds_add")).content.decode()
    payment = start_manual(alice)
    page = client.get(reverse("payment_detail", args=[payment.public_id])).content.decode()
    assert "IBAN DE00 1234<br>BIC XYZ" in page and NO_DETAILS not in page
    payment_reject_manual(payment=payment, actor=alice, reason="no")
    page = client.get(reverse("payment_detail", args=[payment.public_id])).content.decode()
    assert "IBAN DE00 1234" not in page  # only while it waits


def test_an_unverified_address_may_not_add_funds_when_the_setting_asks(client, settings):
    from allauth.account.models import EmailAddress

    from accounts.models import User

    settings.PANEL_REQUIRE_VERIFIED_EMAIL_FOR_DEPOSIT = True
    settings.PAYMENT_METHODS = ["manual"]
    user = User.objects.create_user("newbie", "newbie@example.com", "pw-newbie-123")
    EmailAddress.objects.create(user=user, email=user.email, verified=False, primary=True)
    client.force_login(user)
    page = client.get("/funds/add/")
    assert b'data-testid="verify-email"' in page.content
    assert b'name="amount"' not in page.content
    client.post("/funds/add/", {"method": "manual", "amount": "20", "reference": "T1"})
    assert not Payment.objects.filter(user=user).exists()
    EmailAddress.objects.filter(user=user).update(verified=True)
    assert b'name="amount"' in client.get("/funds/add/").content
