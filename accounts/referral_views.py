"""Referral links (/r/<code>) and the customer's referral page: their link, its figures, and
what they do with available commission, a transfer into the balance or a payout request
(docs/growth.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from accounts.middleware import AuthenticatedHttpRequest
from accounts.models import User
from accounts.ratelimit import client_ip, rate_limit_hit
from accounts.referrals import (
    COOKIE_NAME,
    COOKIE_SALT,
    ReferralError,
    commission_list_for_referrer,
    commission_transfer,
    payout_list_for_referrer,
    payout_request_create,
    referral_cookie_visit_id,
    referral_stats,
    referral_visit_record,
    referrer_account_get,
    referrer_percent,
    transfer_token,
)
from catalog.pricing import money_text

# A link opened again and again from one address counts as a visit this many times an hour.
VISITS_PER_ADDRESS_PER_HOUR = 3


def _amount_field() -> forms.DecimalField:
    return forms.DecimalField(
        label=format_lazy(gettext_lazy("Amount ({currency})"), currency=settings.PANEL_CURRENCY),
        min_value=Decimal("0.01"),
        max_digits=14,
        decimal_places=2,
        error_messages={"max_decimal_places": gettext_lazy("Use at most 2 decimals.")},
    )


class TransferForm(forms.Form):
    amount = _amount_field()
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)


class PayoutForm(forms.Form):
    amount = _amount_field()
    details = forms.CharField(
        label=gettext_lazy("Pay to"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy(
            "Where we should send it: e.g. a USDT (TRC20) address or a PayPal e-mail."
        ),
    )


def referral_link(request: HttpRequest, code: str) -> HttpResponse:
    """A referral link: count the visit, remember the first link this browser followed (for
    REFERRAL_COOKIE_DAYS; a later link does not replace it) and go to the sign-up page."""
    visitor = request.user if isinstance(request.user, User) else None
    if visitor is not None:
        return redirect("home")
    ip = client_ip(request)
    visit = None
    if not rate_limit_hit(
        key=f"ref-visit:{code[:32]}:{ip}", limit=VISITS_PER_ADDRESS_PER_HOUR, period=3600
    ):
        visit = referral_visit_record(
            code=code[:32], ip=ip, user_agent=request.headers.get("user-agent", "")
        )
    response = redirect("account_signup")
    if visit is not None and referral_cookie_visit_id(request) is None:
        response.set_signed_cookie(
            COOKIE_NAME,
            str(visit.pk),
            salt=COOKIE_SALT,
            max_age=settings.REFERRAL_COOKIE_DAYS * 86400,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure(),
        )
    return response


def _page(request: AuthenticatedHttpRequest, **forms_given: Any) -> HttpResponse:
    account = referrer_account_get(user=request.user)
    transfer = forms_given.get("transfer") or TransferForm(
        prefix="transfer", initial={"token": transfer_token()}
    )
    payout = forms_given.get("payout") or PayoutForm(prefix="payout")
    context = {
        "link": request.build_absolute_uri(reverse("referral_link", args=[account.code])),
        "account": account,
        "stats": referral_stats(account=account),
        "commissions": commission_list_for_referrer(user=request.user)[:20],
        "payouts": payout_list_for_referrer(user=request.user)[:10],
        "transfer_form": transfer,
        "payout_form": payout,
        "payout_minimum": settings.REFERRAL_PAYOUT_MINIMUM,
        "hold_days": settings.REFERRAL_HOLD_DAYS,
        "base": settings.REFERRAL_COMMISSION_BASE,
        "percent": referrer_percent(user=request.user),
    }
    status = 400 if forms_given else 200
    return render(request, "accounts/referrals.html", context, status=status)


@login_required
@require_GET
def referrals(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _page(request)


@login_required
@require_POST
def referral_transfer(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = TransferForm(request.POST, prefix="transfer")
    if form.is_valid():
        try:
            done = commission_transfer(
                user=request.user,
                amount=form.cleaned_data["amount"],
                token=form.cleaned_data["token"],
            )
        except ReferralError as exc:
            form.add_error("amount", str(exc))
        else:
            messages.success(
                request,
                _("{amount} moved to your balance.").format(
                    amount=money_text(done.amount, settings.PANEL_CURRENCY)
                ),
            )
            return redirect("referrals")
    return _page(request, transfer=form)


@login_required
@require_POST
def referral_payout(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = PayoutForm(request.POST, prefix="payout")
    if form.is_valid():
        try:
            payout_request_create(
                user=request.user,
                amount=form.cleaned_data["amount"],
                details=form.cleaned_data["details"],
            )
        except ReferralError as exc:
            form.add_error("amount", str(exc))
        else:
            messages.success(request, _("Payout requested: we will let you know when it is sent."))
            return redirect("referrals")
    return _page(request, payout=form)
