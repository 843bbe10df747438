"""The order forms. Fields come from catalog.order_types.TYPE_SPECS, so the form of a service
shows exactly the parameters its type takes, under the API v2 names the service layer expects.
The forms only shape the input; orders.services validates it (limits, lines, the charge)."""

import re
import uuid
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from django import forms
from django.utils.formats import number_format
from django.utils.text import format_lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from catalog.models import Service
from catalog.order_types import (
    SUBSCRIPTION_DELAYS,
    TYPE_SPECS,
    OrderType,
    QuantityFrom,
    TypeSpec,
    spec_for,
)
from orders.services import OrderError, mass_order_split

# Re-exported: catalog.views reads customer ids with it too.
from orders.services.mass import MASS_ORDER_MAX_LINES
from orders.services.webhooks import webhook_url_clean

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


@dataclass(frozen=True)
class Param:
    label: "StrOrPromise"  # gettext_lazy: shown in the customer's language
    help: "StrOrPromise"
    kind: str = "text"  # text | number | lines | delay | date


PARAMS: dict[str, Param] = {
    "link": Param(_("Link"), _("Link to the page, post or profile.")),
    "quantity": Param(_("Quantity"), _("How many you need."), "number"),
    "runs": Param(_("Runs (drip-feed)"), _("Deliver the quantity this many times."), "number"),
    "interval": Param(_("Interval (minutes)"), _("Minutes between two runs."), "number"),
    "comments": Param(_("Comments"), _("One comment per line."), "lines"),
    "usernames": Param(_("Usernames"), _("One username per line."), "lines"),
    "hashtags": Param(_("Hashtags"), _("One hashtag per line."), "lines"),
    "hashtag": Param(_("Hashtag"), _("The hashtag to scrape.")),
    "username": Param(_("Username"), _("The username (for comment likes: the comment owner's).")),
    "media": Param(_("Media URL"), _("Link to the media whose likers are mentioned.")),
    "answer_number": Param(
        _("Answer number"), _("The number of the poll answer to vote for."), "number"
    ),
    "groups": Param(_("Groups"), _("One group per line."), "lines"),
    "min": Param(_("Quantity min"), _("Least quantity per new post."), "number"),
    "max": Param(_("Quantity max"), _("Most quantity per new post."), "number"),
    "posts": Param(
        _("New posts"), _("How many future posts to serve; empty for unlimited."), "number"
    ),
    "old_posts": Param(_("Existing posts"), _("How many existing posts to serve too."), "number"),
    "delay": Param(_("Delay (minutes)"), _("Wait this long after a post appears."), "delay"),
    "expiry": Param(_("Expiry date"), _("The subscription ends on this day (optional)."), "date"),
}

_DMY = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$")


def service_spec(service: Service) -> TypeSpec:
    return spec_for(service.type) or TYPE_SPECS[OrderType.DEFAULT]


def _field(name: str, required: bool, service: Service) -> forms.Field:
    param = PARAMS[name]
    attrs: dict[str, object] = {"class": "form-control"}
    if param.kind == "lines":
        widget: forms.Widget = forms.Textarea(attrs={**attrs, "rows": 5})
    elif param.kind == "number":
        widget = forms.NumberInput(attrs={**attrs, "min": 0, "step": 1, "inputmode": "numeric"})
        if name == "quantity":
            widget.attrs.update({"min": service.min, "max": service.max})
    elif param.kind == "date":
        widget = forms.DateInput(attrs={**attrs, "type": "date"})
    elif param.kind == "delay":
        choices = [(str(m), f"{m} minutes" if m else "No delay") for m in SUBSCRIPTION_DELAYS]
        return forms.ChoiceField(
            label=param.label,
            help_text=param.help,
            choices=choices,
            required=required,
            widget=forms.Select(attrs={"class": "form-select"}),
        )
    else:
        widget = forms.TextInput(attrs={**attrs, "maxlength": 2000})
        if name in ("link", "media"):
            # Any text the provider takes (a URL, a username, an @channel): no URL keyboard,
            # no capitalised first letter, no spelling fixes.
            widget.attrs.update(
                {"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}
            )
    help_text = _help_text(name, service)
    return forms.CharField(
        label=param.label,
        help_text=help_text,
        required=required,
        widget=widget,
        strip=True,
        max_length=100_000,
    )


def _help_text(name: str, service: Service) -> "StrOrPromise":
    """The field's help; the counted list of a line type says how many lines it needs, the one
    place the page says it."""
    spec = service_spec(service)
    low = number_format(service.min, force_grouping=True)
    high = number_format(service.max, force_grouping=True)
    if name == "quantity":
        return gettext("Between {min} and {max}.").format(min=low, max=high)
    if spec.quantity_from == QuantityFrom.LINES and name == spec.lines_field:
        if name == "usernames":
            text = gettext(
                "One username per line: {min} to {max} lines. "
                "The quantity is the number of lines, each one username."
            )
        else:
            text = gettext(
                "One comment per line: {min} to {max} lines. "
                "The quantity is the number of lines, each one comment."
            )
        return text.format(min=low, max=high)
    return PARAMS[name].help


DRIP_FIELDS = ("runs", "interval")


class OrderForm(forms.Form):
    """One order of one service: exactly the fields of the service's type."""

    service = forms.IntegerField(widget=forms.HiddenInput)
    # A fresh token per form: submitting the same form twice (double click, reload, back
    # button) gives the first order back instead of a second charge.
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, service: Service, **kwargs):
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("service", service.pk)
        kwargs["initial"].setdefault("token", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)
        self.service_obj = service
        spec = service_spec(service)
        for name in spec.fields:
            self.fields[name] = _field(name, name in spec.required, service)
        if not service.dripfeed:
            for name in DRIP_FIELDS:
                self.fields.pop(name, None)
        elif "runs" in self.fields:
            # Drip-feed is asked for by its checkbox; runs and interval count only with it.
            self.fields["dripfeed"] = forms.BooleanField(
                label="Drip-feed: deliver in several runs",
                required=False,
                widget=forms.CheckboxInput(attrs={"class": "form-check-input dripfeed-toggle"}),
            )

    @property
    def param_fields(self) -> list[forms.BoundField]:
        hidden = ("service", "token", "dripfeed", *DRIP_FIELDS)
        return [self[name] for name in self.fields if name not in hidden]

    @property
    def drip_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in DRIP_FIELDS if name in self.fields]

    def clean(self) -> dict:
        data = super().clean() or {}
        if data.get("dripfeed"):
            for name in DRIP_FIELDS:
                if not data.get(name) and name not in self.errors:
                    self.add_error(
                        name, f"{PARAMS[name].label.split(' (')[0]} is needed for a drip-feed."
                    )
        return data

    def dripfeed_plan(self) -> dict[str, int] | None:
        """quantity, runs, interval and their total of a drip-feed order (for the preview), or
        None when the drip-feed is not ticked."""
        data = self.service_data()
        if "runs" not in data:
            return None
        try:
            quantity, runs, interval = (int(data[k]) for k in ("quantity", "runs", "interval"))
        except (KeyError, ValueError):
            return None
        return {"quantity": quantity, "runs": runs, "interval": interval, "total": quantity * runs}

    def clean_expiry(self) -> str:
        value = self.cleaned_data.get("expiry", "")
        if value and not _DMY.match(value):
            try:  # <input type=date> sends YYYY-MM-DD; the API and upstream take d/m/Y
                value = date.fromisoformat(value).strftime("%d/%m/%Y")
            except ValueError:
                raise forms.ValidationError(_("Enter a date, e.g. 31/12/2026.")) from None
        return value

    def service_data(self) -> dict[str, str]:
        """The parameters as API v2 strings, empty optional ones left out."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        left_out = {"service", "token", "dripfeed"}
        if not data.get("dripfeed"):
            left_out.update(DRIP_FIELDS)  # typed, then unticked: an ordinary order
        return {
            name: str(data[name])
            for name in self.fields
            if name not in left_out and data.get(name) not in (None, "")
        }


class MassOrderForm(forms.Form):
    orders = forms.CharField(
        label=_("Orders"),
        help_text=format_lazy(
            _("One order per line: service_id | link | quantity (up to {max_lines})."),
            max_lines=MASS_ORDER_MAX_LINES,
        ),
        widget=forms.Textarea(
            attrs={
                "rows": 10,
                "class": "form-control font-monospace",
                "placeholder": "1 | https://example.com/post/1 | 1000\n2 | https://example.com/p | 500",
            }
        ),
        max_length=200_000,
    )
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("token", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)

    def clean_orders(self) -> list[tuple[int, str]]:
        try:
            return mass_order_split(text=self.cleaned_data["orders"])
        except OrderError as exc:
            raise forms.ValidationError(exc.message) from None


class OrderSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=2000, label=_("Search by order id or link"))


class WebhookForm(forms.Form):
    """The API page's webhook URL (orders.services.webhooks checks it, DNS aside)."""

    url = forms.CharField(
        label=_("Webhook URL"),
        max_length=500,
        help_text=_(
            "We POST a signed JSON event here on each status change of your orders, "
            "refills and cancels."
        ),
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/panel-webhook"}),
    )
    is_active = forms.BooleanField(
        label=_("Send events"), required=False, initial=True, help_text=_("Untick to pause them.")
    )

    def clean_url(self) -> str:
        try:
            return webhook_url_clean(self.cleaned_data["url"])
        except OrderError as exc:
            raise forms.ValidationError(exc.message) from None
