"""The customer's ticket forms. They shape the input; support.services checks it (own orders,
own payment, the attachment's bytes, the cap and the rate limit)."""

import re

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import Payment
from catalog.pricing import money_text
from orders.services.common import parse_id
from support.models import Ticket
from support.services import BODY_MAX, ORDERS_MAX, SUBJECT_MAX, TicketSubject

_SEPARATORS = re.compile(r"[\s,;]+")
IMAGE_ACCEPT = "image/png,image/jpeg"


def _payment_label(payment: Payment) -> str:
    amount = money_text(payment.amount, payment.currency)
    return (
        f"#{payment.pk} · {payment.created_at:%Y-%m-%d} · {amount} · "
        f"{payment.method} · {payment.get_status_display()}"
    )


def _attachment_field() -> forms.FileField:
    return forms.FileField(
        label=_("Screenshot"),
        required=False,
        help_text=_("Optional: a PNG or JPEG image, at most 2 MB."),
        widget=forms.ClearableFileInput(attrs={"accept": IMAGE_ACCEPT}),
    )


class TicketForm(forms.Form):
    kind = forms.ChoiceField(label=_("About"), choices=Ticket.Kind.choices, initial="order")
    subject = forms.CharField(label=_("Subject"), max_length=SUBJECT_MAX)
    orders = forms.CharField(
        label=_("Order IDs"),
        required=False,
        max_length=400,
        help_text=_("For an order ticket: the order ID, or several separated by commas."),
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    request = forms.ChoiceField(
        label=_("Request"),
        required=False,
        choices=[("", "—"), *Ticket.Request.choices],
        help_text=_("For an order ticket: what you need."),
    )
    payment = forms.TypedChoiceField(
        label=_("Payment"),
        required=False,
        coerce=int,
        empty_value=None,
        help_text=_("For a payment ticket: the payment, or type its reference below."),
    )
    payment_reference = forms.CharField(
        label=_("Payment reference"),
        required=False,
        max_length=128,
        help_text=_("The transaction ID or transfer reference, if the payment is not listed."),
    )
    message = forms.CharField(
        label=_("Message"), max_length=BODY_MAX, widget=forms.Textarea(attrs={"rows": 6})
    )
    attachment = _attachment_field()

    def __init__(self, *args: object, payments: list[Payment], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # Form's own signature
        field = self.fields["payment"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [("", "—"), *((p.pk, _payment_label(p)) for p in payments)]

    def clean_orders(self) -> list[int]:
        raw = self.cleaned_data.get("orders", "")
        ids: list[int] = []
        for token in _SEPARATORS.split(raw.strip()):
            if not token:
                continue
            number = parse_id(token)
            if number is None:
                raise forms.ValidationError(
                    gettext("“{token}” is not an order ID.").format(token=token[:20])
                )
            ids.append(number)
        if len(ids) > ORDERS_MAX:
            raise forms.ValidationError(
                gettext("At most {count} orders per ticket.").format(count=ORDERS_MAX)
            )
        return ids

    def about(self) -> TicketSubject:
        data = self.cleaned_data
        return TicketSubject(
            kind=data["kind"],
            order_ids=tuple(data.get("orders") or ()),
            request=data.get("request") or "",
            payment_id=data.get("payment"),
            payment_reference=data.get("payment_reference") or "",
        )


class ReplyForm(forms.Form):
    message = forms.CharField(
        label=_("Your reply"), max_length=BODY_MAX, widget=forms.Textarea(attrs={"rows": 5})
    )
    attachment = _attachment_field()
