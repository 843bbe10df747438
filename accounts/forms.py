import zoneinfo
from decimal import Decimal
from functools import cache
from typing import Any

from allauth.account.forms import LoginForm
from django import forms
from django.contrib.auth import get_user_model

from catalog.pricing import MONEY_DIGITS, MONEY_PLACES


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
        label="Display time zone",
        help_text="Dates and times on your pages are shown in it.",
    )

    class Meta:
        model = get_user_model()
        fields = ("timezone",)


class PanelLoginForm(LoginForm):
    """allauth's login form (settings.ACCOUNT_FORMS) with the panel's wording: one field takes
    the username or the e-mail address."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        login = self.fields["login"]
        login.label = "Username or e-mail"
        login.widget.attrs.update({"autocomplete": "username", "autofocus": True})
        login.widget.attrs.pop("placeholder", None)
        self.fields["password"].widget.attrs.pop("placeholder", None)
