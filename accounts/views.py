"""The customer's own pages: home, settings, funds and the API page (sign-up, login and the
rest of the account pages are django-allauth's, see docs/customer-panel.md)."""

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from allauth.account.decorators import reauthentication_required
from allauth.account.models import EmailAddress
from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods, require_POST
from django.views.i18n import set_language as django_set_language

from accounts.coupons import CouponError, coupon_redeem
from accounts.forms import ApiKeyAllowlistForm, DisplayCurrencyForm, RedeemCodeForm, TimezoneForm
from accounts.middleware import AuthenticatedHttpRequest
from accounts.models import ApiKey, LedgerEntry, Payment, User, UserSession
from accounts.ratelimit import rate_limit_hit
from accounts.security import (
    LOGIN_HISTORY_SHOWN,
    login_event_list_for_user,
    user_session_end,
    user_session_list_for_user,
    user_sessions_end,
)
from accounts.selectors import (
    display_currency_list,
    ledger_list_for_user,
    payment_many_by_ref_for_user,
)
from accounts.services import (
    DisplayCurrencyError,
    api_key_issue,
    api_key_set_allowlist,
    user_set_display_currency,
    user_set_language,
)
from accounts.tiers import tier_progress
from catalog.order_types import TYPE_SPECS
from catalog.pricing import money_number, money_text
from catalog.selectors import category_showcase
from orders.forms import PARAMS, WebhookForm
from orders.models import WebhookEndpoint
from orders.selectors import (
    WEBHOOK_LOG_SHOWN,
    order_list_for_user,
    order_status_many_for_user,
    webhook_event_list_for_user,
)
from orders.services import (
    OrderError,
    webhook_endpoint_remove,
    webhook_endpoint_set,
    webhook_secret_rotate,
    webhook_send_test,
)

STATEMENT_PAGE_SIZE = 50


def home(request: HttpRequest) -> HttpResponse:
    """A visitor's page that sells (the catalog's categories and lowest prices, how ordering
    works, the API); a customer's dashboard (balance, orders, news)."""
    if not request.user.is_authenticated:
        return render(
            request, "home.html", {"showcase": category_showcase(), "api_url": _api_url()}
        )
    orders = order_list_for_user(user=request.user)
    context = {"recent_orders": orders[:5], "order_count": orders.count()}
    return render(request, "home.html", context)


def moved_to(name: str) -> Callable[..., HttpResponse]:
    """A URL of the panel's own auth pages before allauth: it sends the browser to allauth's
    page that replaced it, query string (?next=) kept. GET and HEAD get a 302; another method a
    307, which repeats the same request there (a POST stays a POST)."""

    @login_not_required
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        target = reverse(name)
        if request.META.get("QUERY_STRING"):
            target += "?" + request.META["QUERY_STRING"]
        if request.method in ("GET", "HEAD"):
            return HttpResponseRedirect(target)
        response = HttpResponse(status=307)
        response["Location"] = target
        return response

    return view


@login_not_required
@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """The language switch (a plain form POST, no JavaScript needed): Django's set_language
    sets the django_language cookie and goes back to `next`; a signed-in customer's choice is
    also saved on the account (User.language), so it follows them to every device and mail."""
    response = django_set_language(request)
    code = request.POST.get("language", "")
    if request.user.is_authenticated and code in dict(settings.LANGUAGES):
        user_set_language(user=request.user, language=code)
    return response


def _currency_form(request: AuthenticatedHttpRequest) -> DisplayCurrencyForm:
    panel = settings.PANEL_CURRENCY
    offered = [
        (c.code, f"{c.code}: {money_text(c.rate, c.code, places=8)} for {money_text(1, panel)}")
        for c in display_currency_list()
    ]
    data = request.POST if request.POST.get("form") == "currency" else None
    return DisplayCurrencyForm(
        data,
        offered=offered,
        panel_currency=settings.PANEL_CURRENCY,
        prefix="cur",
        initial={"display_currency": request.user.display_currency},
    )


@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The time zone and display currency forms, and links to allauth's e-mail, password and
    two-factor pages."""
    user = request.user
    currency_form = _currency_form(request)
    posted = request.POST if request.POST.get("form") != "currency" else None
    form = TimezoneForm(posted or None, instance=user, prefix="tz")
    if currency_form.is_valid():
        try:
            user_set_display_currency(
                user=user, code=currency_form.cleaned_data["display_currency"]
            )
        except DisplayCurrencyError as exc:
            currency_form.add_error("display_currency", str(exc))
        else:
            messages.success(request, "Prices and your balance are now shown in that currency.")
            return redirect("account_settings")
    elif request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("Times are now shown in your time zone."))
        return redirect("account_settings")
    context = {
        "form": form,
        "currency_form": currency_form,
        "email_address": EmailAddress.objects.get_primary(user),
        "mfa_enabled": is_mfa_enabled(user),
        "tier": tier_progress(user=user),
    }
    invalid = form.errors or currency_form.errors
    return render(request, "accounts/settings.html", context, status=400 if invalid else 200)


@login_required
@require_http_methods(["GET", "POST"])
def funds(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The balance, the statement, and the balance code (gift card) form."""
    form = RedeemCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            entry = coupon_redeem(user=request.user, code=form.cleaned_data["code"])
        except CouponError as exc:
            form.add_error("code", str(exc))
        else:
            messages.success(
                request,
                _("The code is redeemed: {amount} added to your balance.").format(
                    amount=money_text(entry.amount, settings.PANEL_CURRENCY)
                ),
            )
            return redirect("funds")
    entries = ledger_list_for_user(user=request.user)
    page = Paginator(entries, STATEMENT_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = statement_rows(user=request.user, entries=list(page.object_list))
    context = {"page": page, "entries": rows, "redeem_form": form}
    return render(request, "accounts/funds.html", context, status=400 if form.errors else 200)


# --- Colour mode ------------------------------------------------------------------------------
THEME_COOKIE = "panel_theme"
THEME_COOKIE_AGE = 365 * 24 * 3600


def theme_of(request: HttpRequest) -> str:
    """The visitor's colour mode: the customer's saved choice, else the cookie of a visitor
    who is not logged in, else auto. Only the three known values ever reach a template."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        theme = str(getattr(user, "theme", ""))
    else:
        theme = request.COOKIES.get(THEME_COOKIE, "")
    return theme if theme in User.Theme.values else User.Theme.AUTO


@login_not_required
@require_http_methods(["GET", "POST"])
def theme_set(request: HttpRequest) -> HttpResponse:
    """GET: the three choices (the page behind the header's toggle without JavaScript).
    POST `theme`: saved on the customer (and in a cookie, so the logged-out pages follow),
    then back to `next`."""
    target = (request.POST if request.method == "POST" else request.GET).get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("home")
    if request.method == "GET":
        context = {"next_url": target, "choices": User.Theme.choices}
        return render(request, "accounts/theme.html", context)
    theme = request.POST.get("theme", "")
    if theme not in User.Theme.values:
        return HttpResponse("Unknown colour mode.", status=400, content_type="text/plain")
    if request.user.is_authenticated:
        user = request.user
        user.theme = theme
        user.save(update_fields=["theme"])
    response = redirect(target)
    response.set_cookie(
        THEME_COOKIE,
        theme,
        max_age=THEME_COOKIE_AGE,
        samesite="Lax",
        secure=request.is_secure(),
        httponly=True,
    )
    return response


# --- The statement: why each entry is there ----------------------------------------------------
@dataclass(frozen=True)
class StatementRow:
    """A ledger entry as the statement shows it: why it is there ("Partial refund of order 12",
    "Deposit by card (payment #3)"), where that leads, and the memo when it says more."""

    entry: LedgerEntry
    reason: str
    url: str  # "" when there is nothing to open
    details: str


# Our own memos (accounts.coupons): the code is the word after "Code" / "Balance code".
_CODE_MEMO = re.compile(r"^(?:Balance code|Code) (\S+)")
# A refund's order reached a final status and keeps it: that status says which refund it is.
_REFUND_WORDS = {
    "partial": gettext_lazy("Partial refund of order {order_id}"),
    "canceled": gettext_lazy("Cancel refund of order {order_id}"),
    # a subscription that ended with remains
    "completed": gettext_lazy("Refund of the unused part of order {order_id}"),
}
# How the statement names a payment method ("Deposit by card").
_METHOD_WORDS = {
    "stripe": gettext_lazy("card"),
    "cryptomus": gettext_lazy("crypto"),
    "paypal": "PayPal",
    "manual": gettext_lazy("bank transfer"),
}


def statement_rows(*, user: User, entries: list[LedgerEntry]) -> list[StatementRow]:
    """The reasons of a page of entries, with two queries whatever its length: the orders of
    its refunds and the payments of its deposits and bonuses."""
    orders = order_status_many_for_user(
        user=user,
        order_ids=[
            e.order_ref for e in entries if e.order_ref and e.kind == LedgerEntry.Kind.REFUND
        ],
    )
    payments = payment_many_by_ref_for_user(
        user=user, refs=[e.payment_ref for e in entries if e.payment_ref]
    )
    rows = []
    for entry in entries:
        payment = payments.get(entry.payment_ref)
        order = orders.get(entry.order_ref) if entry.order_ref else None
        reason, url = _reason(entry, payment, order.status if order is not None else "")
        details = entry.details if entry.details != reason else ""
        rows.append(StatementRow(entry=entry, reason=reason, url=url, details=details))
    return rows


def _reason(entry: LedgerEntry, payment: Payment | None, order_status: str) -> tuple[str, str]:
    kind, ref = LedgerEntry.Kind, entry.order_ref
    payment_url = reverse("payment_detail", args=[payment.public_id]) if payment else ""
    if ref and kind(entry.kind) in (kind.CHARGE, kind.REFUND):
        url = reverse("order_detail", args=[ref])
        if entry.kind == kind.CHARGE:
            return _("Order {order_id}").format(order_id=ref), url
        refund = _REFUND_WORDS.get(order_status) or gettext_lazy("Refund of order {order_id}")
        return str(refund).format(order_id=ref), url
    if entry.kind == kind.DEPOSIT:
        if payment is not None:
            method = str(_METHOD_WORDS.get(payment.method, payment.method))
            text = _("Deposit by {method} (payment #{payment_id})")
            return text.format(method=method, payment_id=payment.pk), payment_url
        return (_("Deposit by staff") if entry.created_by_id else _("Deposit")), ""
    if entry.kind == kind.BONUS:
        code = _CODE_MEMO.match(entry.memo)
        if (entry.idempotency_key or "").startswith("bonus:"):
            return _("Deposit bonus"), payment_url
        if entry.payment_ref:
            return _("Coupon bonus {code}").format(code=code.group(1) if code else "").strip(), (
                payment_url
            )
        return _("Gift card {code}").format(code=code.group(1) if code else "").strip(), ""
    if entry.kind == kind.COMMISSION:
        return _("Referral commission"), reverse("referrals")
    if entry.kind == kind.ADJUSTMENT:
        return _("Adjustment by staff"), ""
    return entry.get_kind_display(), ""


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_cell(value: str) -> str:
    # A memo written by staff must not turn into a formula in the customer's spreadsheet.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _statement_stream(user: User, entries: QuerySet[LedgerEntry]) -> Iterator[StatementRow]:
    """Every entry with its reason, 2000 at a time (two lookups per 2000, not per entry)."""
    chunk: list[LedgerEntry] = []
    for entry in entries.iterator(chunk_size=2000):
        chunk.append(entry)
        if len(chunk) == 2000:
            yield from statement_rows(user=user, entries=chunk)
            chunk = []
    yield from statement_rows(user=user, entries=chunk)


@login_required
def funds_csv(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    entries = ledger_list_for_user(user=request.user).order_by("id")
    writer = csv.writer(_Echo())
    # The rows are written while the response streams, after UserTimezoneMiddleware has put the
    # default zone back: take the customer's zone now.
    tz = timezone.get_current_timezone()
    currency = settings.PANEL_CURRENCY

    def rows() -> Iterator[str]:
        yield writer.writerow(
            [
                *("entry", "date", "type", "amount", "balance_after"),
                *("order", "memo", "payment_ref", "reason", "currency"),
            ]
        )
        for row in _statement_stream(request.user, entries):
            entry = row.entry
            yield writer.writerow(
                [
                    entry.pk,
                    timezone.localtime(entry.created_at, tz).isoformat(timespec="seconds"),
                    entry.get_kind_display(),
                    # Numbers a spreadsheet reads, with the money format's decimals.
                    money_number(entry.amount),
                    money_number(entry.balance_after),
                    entry.order_ref or "",
                    _csv_cell(entry.memo),
                    _csv_cell(entry.payment_ref),
                    _csv_cell(row.reason),
                    currency,
                ]
            )

    stamp = timezone.localdate().isoformat()
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="statement-{stamp}.csv"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
# A new key only after a fresh password or second factor (allauth's reauthentication: a stolen
# session alone cannot take over the reseller API).
@reauthentication_required(allow_get=True)
def api_docs(request: AuthenticatedHttpRequest) -> HttpResponse:
    issued = None
    if request.method == "POST":
        with transaction.atomic():
            issued = api_key_issue(user=request.user)
    api_key = issued.api_key if issued else ApiKey.objects.filter(user=request.user).first()
    context = _api_page_context(request, api_key=api_key, raw_key=issued.raw if issued else None)
    response = render(request, "accounts/api.html", context)
    if issued:
        response["Cache-Control"] = "no-store"  # the raw key must not linger in a cache
    return response


def _api_url() -> str:
    return settings.PANEL_PUBLIC_URL.rstrip("/") + "/api/v2"


def _api_page_context(
    request: AuthenticatedHttpRequest,
    *,
    api_key: ApiKey | None,
    raw_key: str | None,
    allowlist_form: ApiKeyAllowlistForm | None = None,
    webhook_form: WebhookForm | None = None,
    webhook_secret: str | None = None,
) -> dict[str, Any]:
    if allowlist_form is None and api_key is not None:
        allowlist_form = ApiKeyAllowlistForm(
            initial={"allowed_ips": "\n".join(api_key.allowed_ips)}
        )
    return {
        "api_url": _api_url(),
        "api_key": api_key,
        "raw_key": raw_key,
        "allowlist_form": allowlist_form,
        **_webhook_context(request, form=webhook_form, secret=webhook_secret),
        "api_key_stale": api_key is not None and api_key.is_stale_at(timezone.now()),
        "stale_days": ApiKey.STALE_AFTER.days,
        "order_types": [
            (
                order_type.value,
                [(name, PARAMS[name], name in spec.required) for name in spec.fields],
            )
            for order_type, spec in TYPE_SPECS.items()
        ],
        "actions": [
            {**a, "example": a["example"].replace("{currency}", settings.PANEL_CURRENCY)}
            for a in API_ACTIONS
        ],
    }


# The actions of /api/v2 besides `add` (whose parameters come from TYPE_SPECS), in the order
# and with the example answers of the providers' documents the API follows.
API_ACTIONS: list[dict] = [
    {
        "id": "services",
        "title": gettext_lazy("Service list"),
        "params": [("action", "services")],
        "example": '[\n  {\n    "service": 1,\n    "name": "Followers",\n    "type": "Default",\n'
        '    "category": "First Category",\n    "rate": "0.90",\n    "min": "50",\n'
        '    "max": "10000",\n    "refill": true,\n    "cancel": true,\n'
        '    "dripfeed": false\n  }\n]',
    },
    {
        "id": "status",
        "title": gettext_lazy("Order status"),
        "params": [("action", "status"), ("order", gettext_lazy("Order ID"))],
        "example": '{\n  "charge": "0.27819",\n  "start_count": "3572",\n  "status": "Partial",\n'
        '  "remains": "157",\n  "currency": "{currency}"\n}',
    },
    {
        "id": "multi-status",
        "title": gettext_lazy("Multiple orders status"),
        "params": [
            ("action", "status"),
            ("orders", gettext_lazy("Order IDs (separated by a comma, up to 100 IDs)")),
        ],
        "example": '{\n  "1": {\n    "charge": "0.27819",\n    "start_count": "3572",\n'
        '    "status": "Partial",\n    "remains": "157",\n    "currency": "{currency}"\n'
        '  },\n  "10": {\n    "error": "Incorrect order ID"\n  }\n}',
    },
    {
        "id": "refill",
        "title": gettext_lazy("Create refill"),
        "params": [("action", "refill"), ("order", gettext_lazy("Order ID"))],
        "example": '{\n  "refill": "1"\n}',
    },
    {
        "id": "multi-refill",
        "title": gettext_lazy("Create multiple refill"),
        "params": [
            ("action", "refill"),
            ("orders", gettext_lazy("Order IDs (separated by a comma, up to 100 IDs)")),
        ],
        "example": '[\n  {\n    "order": 1,\n    "refill": 1\n  },\n  {\n    "order": 3,\n'
        '    "refill": {\n      "error": "Incorrect order ID"\n    }\n  }\n]',
    },
    {
        "id": "refill-status",
        "title": gettext_lazy("Get refill status"),
        "params": [("action", "refill_status"), ("refill", gettext_lazy("Refill ID"))],
        "example": '{\n  "status": "Completed"\n}',
    },
    {
        "id": "multi-refill-status",
        "title": gettext_lazy("Get multiple refill status"),
        "params": [
            ("action", "refill_status"),
            ("refills", gettext_lazy("Refill IDs (separated by a comma, up to 100 IDs)")),
        ],
        "example": '[\n  {\n    "refill": 1,\n    "status": "Completed"\n  },\n  {\n    "refill": 3,\n'
        '    "status": {\n      "error": "Refill not found"\n    }\n  }\n]',
    },
    {
        "id": "cancel",
        "title": gettext_lazy("Create cancel"),
        "params": [
            ("action", "cancel"),
            ("orders", gettext_lazy("Order IDs (separated by a comma, up to 100 IDs)")),
        ],
        "example": '[\n  {\n    "order": 9,\n    "cancel": {\n      "error": "Incorrect order ID"\n'
        '    }\n  },\n  {\n    "order": 2,\n    "cancel": 1\n  }\n]',
    },
    {
        "id": "cancel-status",
        "title": gettext_lazy("Get multiple cancel status"),
        "params": [
            ("action", "cancel"),
            ("cancels", gettext_lazy("Cancel IDs (separated by a comma, up to 100 IDs)")),
        ],
        "example": '[\n  {\n    "cancel": 1,\n    "status": "Completed"\n  },\n  {\n    "cancel": 3,\n'
        '    "status": {\n      "error": "Cancel not found"\n    }\n  }\n]',
    },
    {
        "id": "balance",
        "title": gettext_lazy("User balance"),
        "params": [("action", "balance")],
        "example": '{\n  "balance": "100.84292",\n  "currency": "{currency}"\n}',
    },
]


# --- Security: login history and sessions (accounts/security.py) ---------------------------------


@login_required
def account_security(request: AuthenticatedHttpRequest) -> HttpResponse:
    context = {
        "events": login_event_list_for_user(user=request.user)[:LOGIN_HISTORY_SHOWN],
        "sessions": user_session_list_for_user(user=request.user),
        "current_key": request.session.session_key,
        "history_shown": LOGIN_HISTORY_SHOWN,
    }
    return render(request, "accounts/security.html", context)


@login_required
@require_POST
def account_session_end(request: AuthenticatedHttpRequest, session_id: int) -> HttpResponse:
    current = UserSession.objects.filter(
        user=request.user, session_key=request.session.session_key or ""
    ).first()
    if current is not None and current.pk == session_id:
        messages.error(request, _("That is this device: use “Log out” to end it."))
    elif user_session_end(user=request.user, session_id=session_id):
        messages.success(request, _("The session is ended: that device is logged out."))
    else:
        messages.info(request, _("That session had already ended."))
    return redirect("account_security")


@login_required
@require_POST
def account_sessions_end_others(request: AuthenticatedHttpRequest) -> HttpResponse:
    ended = user_sessions_end(user=request.user, keep_session_key=request.session.session_key)
    text = ngettext(
        "%(count)d other session ended: only this device is still logged in.",
        "%(count)d other sessions ended: only this device is still logged in.",
        ended,
    )
    messages.success(request, text % {"count": ended})
    return redirect("account_security")


# --- API key allowlist ----------------------------------------------------------------------------


@login_required
@require_POST
def api_key_allowlist(request: AuthenticatedHttpRequest) -> HttpResponse:
    api_key = ApiKey.objects.filter(user=request.user).first()
    if api_key is None:
        messages.error(request, _("Create an API key first."))
        return redirect("api_docs")
    form = ApiKeyAllowlistForm(request.POST)
    if form.is_valid():
        api_key_set_allowlist(api_key=api_key, allowed_ips=form.cleaned_data["allowed_ips"])
        messages.success(request, _("The key's allowed addresses are saved."))
        return redirect(reverse("api_docs") + "#key")
    context = _api_page_context(request, api_key=api_key, raw_key=None, allowlist_form=form)
    return render(request, "accounts/api.html", context, status=400)


# --- Webhooks (orders/services/webhooks.py, docs/webhooks.md) -------------------------------------

WEBHOOK_TESTS_PER_MINUTE = 5


def _webhook_context(
    request: AuthenticatedHttpRequest, *, form: WebhookForm | None, secret: str | None
) -> dict[str, Any]:
    endpoint = WebhookEndpoint.objects.filter(user=request.user).first()
    if form is None:
        initial = {"url": endpoint.url, "is_active": endpoint.is_active} if endpoint else {}
        form = WebhookForm(initial=initial)
    return {
        "webhook": endpoint,
        "webhook_form": form,
        "webhook_secret": secret,
        "webhook_events": webhook_event_list_for_user(user=request.user)[:WEBHOOK_LOG_SHOWN],
        "webhook_log_shown": WEBHOOK_LOG_SHOWN,
    }


def _api_page_with(
    request: AuthenticatedHttpRequest, *, status: int = 200, **webhook: Any
) -> HttpResponse:
    """The API page rendered again (a webhook form with errors, or a secret to show once)."""
    api_key = ApiKey.objects.filter(user=request.user).first()
    context = _api_page_context(request, api_key=api_key, raw_key=None, **webhook)
    response = render(request, "accounts/api.html", context, status=status)
    response["Cache-Control"] = "no-store"  # a secret shown once must not linger in a cache
    return response


@login_required
@require_POST
def api_webhook_set(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            saved = webhook_endpoint_set(
                user=request.user,
                url=form.cleaned_data["url"],
                is_active=form.cleaned_data["is_active"],
            )
        except OrderError as exc:
            form.add_error("url", exc.message)
        else:
            if saved.secret:
                return _api_page_with(request, webhook_secret=saved.secret)
            messages.success(request, _("The webhook is saved."))
            return redirect(reverse("api_docs") + "#webhook")
    return _api_page_with(request, status=400, webhook_form=form)


@login_required
@require_POST
def api_webhook_rotate(request: AuthenticatedHttpRequest) -> HttpResponse:
    try:
        saved = webhook_secret_rotate(user=request.user)
    except OrderError as exc:
        messages.error(request, exc.message)
        return redirect(reverse("api_docs") + "#webhook")
    return _api_page_with(request, webhook_secret=saved.secret)


@login_required
@require_POST
def api_webhook_remove(request: AuthenticatedHttpRequest) -> HttpResponse:
    if webhook_endpoint_remove(user=request.user):
        messages.success(request, _("The webhook is removed: no more events are sent."))
    return redirect(reverse("api_docs") + "#webhook")


@login_required
@require_POST
def api_webhook_test(request: AuthenticatedHttpRequest) -> HttpResponse:
    key = f"webhook-test:{request.user.pk}"
    try:
        wait = rate_limit_hit(key=key, limit=WEBHOOK_TESTS_PER_MINUTE, period=60)
    except Exception:  # the cache is down: a test event is no reason to fail the page
        wait = 0
    if wait:
        messages.error(
            request, _("Too many test events: try again in {wait} seconds.").format(wait=wait)
        )
        return redirect(reverse("api_docs") + "#webhook")
    try:
        event = webhook_send_test(user=request.user)
    except OrderError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("Test event {event_id} queued: its delivery shows in the log below.").format(
                event_id=event.event_id
            ),
        )
    return redirect(reverse("api_docs") + "#webhook-log")
