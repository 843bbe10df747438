import zoneinfo
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from allauth.account.forms import LoginForm, SignupForm
from django import forms
from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import format_lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import MAX_ALLOWED_IPS, ip_allowlist_clean
from accounts.payments import PaymentError, parse_deposit_amount
from accounts.ratelimit import client_ip
from catalog.pricing import MONEY_DIGITS, MONEY_PLACES
from content.selectors import terms_version_current
from content.services import terms_acceptance_record

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class BalanceChangeForm(forms.Form):
    """Staff's manual credit or debit of a customer's balance."""

    DIRECTIONS = [("credit", "Credit (add funds)"), ("debit", "Debit (take funds)")]

    direction = forms.ChoiceField(choices=DIRECTIONS, initial="credit")
    amount = forms.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, min_value=Decimal("0.00001")
    )
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required; it is written on the ledger entry and shown on the statement.",
    )
    payment_ref = forms.CharField(
        max_length=128, required=False, help_text="A payment's reference, if there was one."
    )

    def signed_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        return amount if self.cleaned_data["direction"] == "credit" else -amount


# --- Customer pages ---------------------------------------------------------------------------


@cache
def timezone_choices() -> list[tuple[str, str]]:
    names = sorted(n for n in zoneinfo.available_timezones() if "/" in n or n == "UTC")
    return [(n, n.replace("_", " ")) for n in names]


class TimezoneForm(forms.ModelForm):
    timezone = forms.ChoiceField(
        choices=timezone_choices,
        label=_("Display time zone"),
        help_text=_("Dates and times on your pages are shown in it."),
    )

    class Meta:
        model = get_user_model()
        fields = ("timezone",)


class DisplayCurrencyForm(forms.Form):
    """The currency prices and the balance are shown in: the panel's, or one staff offer."""

    display_currency = forms.ChoiceField(
        label="Show prices and my balance in",
        required=False,
        help_text="Charges, payments and your statement stay in the panel's currency; the "
        "conversion uses the rate the panel's staff set.",
    )

    def __init__(
        self, *args: Any, offered: list[tuple[str, str]], panel_currency: str, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        field = self.fields["display_currency"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", f"{panel_currency} (the panel's currency)"), *offered]


# --- Add funds --------------------------------------------------------------------------------


class DepositForm(forms.Form):
    """The Add funds form: a method among those offered, an amount in the panel currency and,
    for a manual transfer, its reference. The limits are checked by accounts.payments."""

    method = forms.ChoiceField(
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Choose a payment method."),
            "invalid_choice": _("Choose a payment method."),
        },
    )
    # Text, not type=number: a browser's number input turns "1,5" into 15 and takes "1,000".
    amount = forms.CharField(
        max_length=32,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        error_messages={"required": _("Enter an amount, e.g. 25 or 25.50.")},
    )
    reference = forms.CharField(
        max_length=128,
        required=False,
        label=_("Transfer reference"),
        help_text=_("For a manual transfer: the reference or transaction id of your transfer."),
    )

    coupon = forms.CharField(
        max_length=40,
        required=False,
        label=_("Bonus code"),
        help_text=_("If you have one: its bonus is added when the payment arrives."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, methods: list[tuple[str, str]], manual: set[str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        method_field = self.fields["method"]
        assert isinstance(method_field, forms.ChoiceField)
        method_field.choices = methods
        if len(methods) == 1:
            self.fields["method"].initial = methods[0][0]
        self.manual = manual

    def clean_amount(self) -> Decimal:
        try:
            return parse_deposit_amount(self.cleaned_data["amount"])
        except PaymentError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("method") in self.manual and not data.get("reference", "").strip():
            self.add_error(
                "reference", _("Give the reference of your transfer so staff can find it.")
            )
        return data


class RedeemCodeForm(forms.Form):
    """The funds page's balance code (gift card) field; accounts.coupons checks the code."""

    code = forms.CharField(
        max_length=40,
        label=_("Balance code"),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        error_messages={"required": _("Enter a code.")},
    )


class ApiKeyAllowlistForm(forms.Form):
    """The addresses an API key may be used from, one per line (empty: anywhere)."""

    allowed_ips = forms.CharField(
        label=_("Allowed addresses"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "autocomplete": "off"}),
        help_text=format_lazy(
            _(
                "One IP address or network per line (e.g. 203.0.113.7 or 203.0.113.0/24), at "
                "most {max_entries}. Calls with your key from any other address are refused. "
                "Leave empty to allow every address."
            ),
            max_entries=MAX_ALLOWED_IPS,
        ),
    )

    def clean_allowed_ips(self) -> list[str]:
        lines = self.cleaned_data["allowed_ips"].replace(",", "\n").splitlines()
        return ip_allowlist_clean(lines)  # a ValidationError lands on this field


class PanelLoginForm(LoginForm):
    """allauth's login form (settings.ACCOUNT_FORMS) with the panel's wording: one field takes
    the username or the e-mail address."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        login = self.fields["login"]
        login.label = gettext("Username or e-mail")
        login.widget.attrs.update({"autocomplete": "username", "autofocus": True})
        login.widget.attrs.pop("placeholder", None)
        self.fields["password"].widget.attrs.pop("placeholder", None)


class PanelSignupForm(SignupForm):
    """allauth's sign-up form (settings.ACCOUNT_FORMS) with the required acceptance of the terms
    of service: the new account gets a TermsAcceptance row with the version in force when the
    form was sent (docs/content.md)."""

    accept_terms = forms.BooleanField(
        required=True,
        error_messages={"required": _("Accept the terms of service to create an account.")},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.terms_version = terms_version_current()
        # Last, after the passwords (allauth adds those after ordering the other fields).
        self.fields["accept_terms"] = self.fields.pop("accept_terms")
        self.fields["accept_terms"].label = format_html(
            gettext(
                'I have read and accept the <a href="{}" target="_blank" rel="noopener">terms '
                "of service</a>"
            ),
            reverse("terms"),
        )

    def custom_signup(self, request: HttpRequest, user: Any) -> None:
        super().custom_signup(request, user)
        terms_acceptance_record(
            user=user, version=self.terms_version, ip=client_ip(request) or None
        )


# --- Notifications ------------------------------------------------------------------------------


class NotificationPreferenceForm(forms.Form):
    """One checkbox per mail the user may get (staff see theirs too), and the balance
    threshold. Built from accounts.notifications.EVENTS."""

    low_balance_threshold = forms.DecimalField(
        required=False,
        max_digits=MONEY_DIGITS,
        decimal_places=MONEY_PLACES,
        min_value=Decimal("0.01"),
        label=_("Low balance threshold"),
        help_text=_("Tell me when an order takes my balance below this amount. Empty: never."),
    )

    def __init__(self, *args: Any, events: "list[tuple[str, StrOrPromise, bool]]", **kwargs: Any):
        """`events`: (event, label, currently on) for each mail offered."""
        super().__init__(*args, **kwargs)
        for event, label, on in events:
            self.fields[f"email_{event}"] = forms.BooleanField(
                required=False, label=label, initial=on
            )
        self.event_names = [event for event, _, _ in events]

    def email_choices(self) -> dict[str, bool]:
        return {e: bool(self.cleaned_data.get(f"email_{e}")) for e in self.event_names}

    def email_fields(self) -> list[forms.BoundField]:
        return [self[f"email_{e}"] for e in self.event_names]
