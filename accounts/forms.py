from decimal import Decimal

from django import forms

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
