"""The customer's Add funds page, a payment's own page (where gateways send the customer back)
and the gateways' webhooks (docs/payments.md)."""

from __future__ import annotations

import logging
import re
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from accounts.coupons import CouponError, coupon_check_deposit
from accounts.forms import DepositForm
from accounts.gateways import gateway_for
from accounts.gateways.base import Gateway, GatewayError, Refusal, Report, WebhookAnswer
from accounts.middleware import AuthenticatedHttpRequest
from accounts.models import CouponUse, Payment, PaymentCallback
from accounts.payments import (
    METHOD_WORDS,
    UNVERIFIED_EMAIL,
    MethodOffer,
    PaymentError,
    PaymentUrls,
    deposit_bonus_rules_active,
    payment_cancel_by_customer,
    payment_limits_check,
    payment_method_offer,
    payment_methods_offered,
    payment_refusal_record,
    payment_report_apply,
    payment_start,
)
from accounts.ratelimit import client_ip
from accounts.selectors import payment_list_for_user, user_may_deposit

log = logging.getLogger(__name__)


_AMOUNT_ASKED = re.compile(r"^\d{1,9}(\.\d{1,2})?$")


def _amount_asked(request: HttpRequest) -> str:
    """?amount=3.20 (the new-order page's "Add funds" when the balance is short) fills in the
    amount; anything but a plain amount is ignored (the form checks what is sent anyway)."""
    amount = request.GET.get("amount", "").strip()
    return amount if _AMOUNT_ASKED.match(amount) else ""


def _urls(request: HttpRequest) -> PaymentUrls:
    return PaymentUrls(
        base_url=request.build_absolute_uri("/"),
        return_path=lambda p: reverse("payment_detail", args=[p.public_id]),
        cancel_path=lambda p: reverse("payment_detail", args=[p.public_id]) + "?canceled=1",
        webhook_path=lambda method: reverse("payment_webhook", args=[method]),
    )


@login_required
@require_http_methods(["GET", "POST"])
def funds_add(request: AuthenticatedHttpRequest) -> HttpResponse:
    if not user_may_deposit(user=request.user):
        # PANEL_REQUIRE_VERIFIED_EMAIL_FOR_DEPOSIT: no form until the address is verified.
        return render(request, "accounts/funds_add.html", {"unverified": UNVERIFIED_EMAIL})
    offers = payment_methods_offered()
    form = DepositForm(
        request.POST or None,
        methods=[(o.code, o.name) for o in offers],
        manual={o.code for o in offers if o.code == "manual"},
        initial={"amount": _amount_asked(request)},
    )
    if request.method == "POST" and form.is_valid():
        try:
            payment = payment_start(
                user=request.user,
                method=form.cleaned_data["method"],
                amount=form.cleaned_data["amount"],
                urls=_urls(request),
                customer_reference=form.cleaned_data["reference"].strip(),
                coupon=form.cleaned_data["coupon"],
            )
        except CouponError as exc:
            form.add_error("coupon", str(exc))
        except PaymentError as exc:
            form.add_error(_error_field(str(exc)), str(exc))
        else:
            return redirect(payment.checkout_url)
    elif form.is_bound:
        _limits_with_other_errors(form, offers)
        _coupon_with_other_errors(request, form)
    names = {o.code: o.name for o in offers}
    context = {
        "form": form,
        "offers": offers,
        "has_manual": any(o.code == "manual" for o in offers),
        "bonus_rules": deposit_bonus_rules_active(),
        "instructions": settings.PANEL_FUNDS_INSTRUCTIONS,
        "payments": [
            (p, names.get(p.method) or METHOD_WORDS.get(p.method, p.method))
            for p in payment_list_for_user(user=request.user)[:10]
        ],
    }
    response = render(
        request, "accounts/funds_add.html", context, status=400 if form.errors else 200
    )
    _allow_checkout_redirects(response, offers)
    return response


def _allow_checkout_redirects(response: HttpResponse, offers: list[MethodOffer]) -> None:
    """The form's answer redirects to the gateway's checkout: add the offered gateways'
    checkout origins to this page's form-action (django-csp's per-response update), or the
    browser blocks that redirect."""
    origins = sorted({origin for o in offers for origin in o.gateway.checkout_origins()})
    if origins:
        setattr(response, "_csp_update", {"form-action": origins})  # noqa: B010
        setattr(response, "_csp_update_ro", {"form-action": origins})  # noqa: B010


def _limits_with_other_errors(form: DepositForm, offers: list[MethodOffer]) -> None:
    """A form refused for another field (the reference) also says at once when the amount is
    outside the method's limits, instead of on the next try."""
    data = form.cleaned_data
    offer = next((o for o in offers if o.code == data.get("method")), None)
    if offer is None or "amount" not in data or form.has_error("amount"):
        return
    try:
        payment_limits_check(offer=offer, amount=data["amount"])
    except PaymentError as exc:
        form.add_error("amount", str(exc))


def _coupon_with_other_errors(request: AuthenticatedHttpRequest, form: DepositForm) -> None:
    """A form refused for another field also says at once what is wrong with the code."""
    data = form.cleaned_data
    if not data.get("coupon", "").strip():
        return
    try:
        coupon_check_deposit(user=request.user, code=data["coupon"], amount=data.get("amount"))
    except CouponError as exc:
        form.add_error("coupon", str(exc))


def _error_field(message: str) -> str | None:
    """The field a refusal of payment_start is about (at the field, not above the form)."""
    if "amount" in message:
        return "amount"
    if "method" in message:
        return "method"
    return None


@login_required
def payment_detail(request: AuthenticatedHttpRequest, public_id: UUID) -> HttpResponse:
    """Where the gateway sends the customer back. It never credits by itself, except for a
    gateway that settles on return (PayPal's capture), and then through the same path as a
    webhook, once."""
    payment = get_object_or_404(Payment, public_id=public_id, user=request.user)
    gateway = gateway_for(payment.method)
    if request.GET.get("canceled") and payment.status in Payment.OPEN:
        # The gateway's cancel link changes nothing (a GET; the customer may have paid and
        # still followed it): the Cancel button below is the deliberate POST.
        messages.info(
            request,
            _(
                "You left the checkout. If you paid, this page shows it as soon as the gateway "
                "confirms."
            ),
        )
    elif gateway is not None and gateway.settles_on_return and payment.status in Payment.OPEN:
        _confirm_on_return(request, gateway, payment)
        payment.refresh_from_db()
    offer = payment_method_offer(payment.method)
    method_name = offer.name if offer else METHOD_WORDS.get(payment.method, payment.method)
    context = {
        "payment": payment,
        "coupon_use": CouponUse.objects.filter(payment=payment).select_related("coupon").first(),
        "method_name": method_name,
        "received": _received(payment),
        "instructions": offer.instructions if offer else "",
    }
    return render(request, "accounts/payment_detail.html", context)


def _received(payment: Payment) -> dict[str, Any] | None:
    """What the gateway says it received when that is not what was asked: "short" (underpaid
    or another currency, not credited) or "over" (credited, with an extra for staff)."""
    if payment.charged_amount is None:
        return None
    same = payment.charged_currency.upper() == payment.currency.upper()
    if payment.status == Payment.Status.PAID:
        if same and payment.charged_amount > payment.total:
            return {"kind": "over", "extra": payment.charged_amount - payment.total}
        return None
    open_or_failed = payment.status == Payment.Status.FAILED or payment.needs_attention
    if open_or_failed and (not same or payment.charged_amount < payment.total):
        return {"kind": "short"}
    return None


@login_required
@require_POST
def payment_cancel(request: AuthenticatedHttpRequest, public_id: UUID) -> HttpResponse:
    """The customer's Cancel button on their own waiting payment."""
    payment = get_object_or_404(Payment, public_id=public_id, user=request.user)
    if payment.status in Payment.OPEN:
        try:
            applied = payment_cancel_by_customer(payment=payment, user=request.user)
        except PaymentError as exc:
            messages.error(request, str(exc))
        else:
            if applied.outcome == PaymentCallback.Outcome.APPLIED:
                messages.info(request, _("You canceled this payment."))
    elif payment.status == Payment.Status.CANCELED:
        payment_cancel_by_customer(payment=payment, user=request.user)  # recorded, no change
    return redirect("payment_detail", public_id=payment.public_id)


def _confirm_on_return(request: HttpRequest, gateway: Gateway, payment: Payment) -> None:
    try:
        report = gateway.confirm_return(gateway_id=payment.gateway_id or "", query=request.GET)
    except GatewayError as exc:
        log.warning("Confirming payment %s on return failed: %s", payment.pk, exc)
        messages.warning(
            request, _("The payment could not be confirmed yet; this page will show it once it is.")
        )
        return
    if report is not None:
        payment_report_apply(
            method=payment.method,
            report=report,
            source=PaymentCallback.Source.RETURN,
            remote_addr=client_ip(request),
        )


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, method: str) -> HttpResponse:
    """A gateway's webhook: verified from the raw body, applied once, answered as the gateway
    expects (200 stops its retries, 400 refuses what is not believed, 503 asks for a retry)."""
    gateway = gateway_for(method)
    if gateway is None:
        raise Http404("No such payment method.")
    ip = client_ip(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        report = gateway.parse_webhook(body=request.body, headers=headers)
    except Refusal as refusal:
        payment_refusal_record(
            method=method,
            source=PaymentCallback.Source.WEBHOOK,
            reason=refusal.reason,
            payload=dict(refusal.payload),
            remote_addr=ip,
        )
        answer = gateway.answer(accepted=False, retry=refusal.retry)
    else:
        answer = _apply_webhook(gateway, method, report, ip)
    return HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)


def _apply_webhook(
    gateway: Gateway, method: str, report: Report | None, ip: str | None
) -> WebhookAnswer:
    if report is None:
        return gateway.answer(accepted=True, retry=False)
    try:
        payment_report_apply(
            method=method, report=report, source=PaymentCallback.Source.WEBHOOK, remote_addr=ip
        )
    except DatabaseError:
        log.exception("A %s webhook could not be applied; the gateway will retry", method)
        return gateway.answer(accepted=False, retry=True)
    return gateway.answer(accepted=True, retry=False)
