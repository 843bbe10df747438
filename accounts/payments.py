"""Ways a customer can add funds. Today the only one is a manual credit by the panel's staff
(admin → the customer → "Credit or debit the balance", which writes a deposit to the ledger).

A payment gateway plugs in as another PaymentMethod: it renders its own part of the "Add
funds" page (a form or a redirect button) and, when the gateway confirms a payment, credits
the customer with accounts.services.balance_credit(kind=deposit, payment_ref=<the gateway's
id>, idempotency_key=<gateway>:<id>) so that a repeated confirmation never credits twice.
List the enabled ones in settings.PANEL_PAYMENT_METHODS (dotted paths).
"""

from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class PaymentMethod:
    code: str
    name: str
    template: str  # renders this method's part of the "Add funds" page
    instructions: str = ""


class ManualCredit(PaymentMethod):
    pass


MANUAL_CREDIT = ManualCredit(
    code="manual",
    name="Payment arranged with the panel's staff",
    template="accounts/payments/manual.html",
)


def payment_methods() -> list[PaymentMethod]:
    """The enabled payment methods, in the order the settings list them."""
    paths = getattr(settings, "PANEL_PAYMENT_METHODS", ["accounts.payments.MANUAL_CREDIT"])
    return [import_string(p) for p in paths]
