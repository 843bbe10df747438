"""Small template helpers for the customer panel: Bootstrap classes on form widgets, money
and rate formatting, durations."""

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django import forms, template
from django.conf import settings
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from catalog.pricing import MONEY_PLACES, RATE_PLACES, DisplayRate, display_money_text, money_text

register = template.Library()


@register.filter
def bs(field: forms.BoundField) -> SafeString:
    """Render a field's widget with Bootstrap's class, marked invalid when it has errors."""
    widget = field.field.widget
    if isinstance(widget, forms.CheckboxInput):
        css = "form-check-input"
    elif isinstance(widget, forms.Select):
        css = "form-select"
    else:
        css = "form-control"
    existing = widget.attrs.get("class", "")
    if existing:
        css = existing if css in existing.split() else f"{existing} {css}"
    if field.errors:
        css += " is-invalid"
    return field.as_widget(attrs={"class": css})


Currency = DisplayRate | str | None


def _money(value: Any, arg: Currency, places: int) -> str:
    if value is None or value == "":
        return ""
    panel = settings.PANEL_CURRENCY
    if isinstance(arg, DisplayRate):
        return display_money_text(Decimal(value), panel, arg, places=places)
    if arg == "signed":
        return money_text(Decimal(value), panel, signed=True, places=places)
    return money_text(Decimal(value), arg or panel, places=places)


@register.filter
def money(value: Any, arg: Currency = None) -> str:
    """The one money format (catalog.pricing.money_text): `{{ x|money }}` → "$12.50" in the
    panel's currency; `{{ x|money:"signed" }}` → "+$0.5229" (the statement);
    `{{ x|money:payment.currency }}` in another currency; `{{ x|money:display_currency }}` for
    prices and the balance: in the customer's display currency with the panel's beside,
    "€92.10 ($100.00)" (display_currency comes from the context processor; None: the panel's)."""
    return _money(value, arg, MONEY_PLACES)


@register.filter
def signed_money(value: Any) -> str:
    """`money:"signed"`, kept for templates that use the old name."""
    return _money(value, "signed", MONEY_PLACES)


@register.filter
def rate(value: Any, arg: Currency = None) -> str:
    """A rate per 1000 in the money format, with up to the rate's 8 places: "$0.0035"; takes
    the same argument as `money` (`{{ r|rate:display_currency }}`)."""
    return _money(value, arg, RATE_PLACES)


def money_column(
    field: str,
    description: str,
    *,
    currency_field: str = "",
    signed: bool = False,
    places: int = MONEY_PLACES,
) -> Callable[[Any], str]:
    """An admin list column showing `field` in the money format ("$20.00"; in the row's
    `currency_field` when given), sortable by the field: `list_display = (money_column(...),)`."""

    def column(obj: Any) -> str:
        currency = getattr(obj, currency_field) if currency_field else settings.PANEL_CURRENCY
        return money_text(getattr(obj, field), currency, signed=signed, places=places)

    column.short_description = description  # type: ignore[attr-defined]  # admin reads it
    column.admin_order_field = field  # type: ignore[attr-defined]
    column.__name__ = f"{field}_money"
    return column


@register.filter
def duration(value: timedelta | None) -> str:
    """A completion time the way people say it: "45 min", "3 h 20 min", "2 d 4 h"."""
    if value is None:
        return ""
    minutes = max(1, round(value.total_seconds() / 60))
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    # Abbreviations of day, hour and minute, as each language writes them.
    if days:
        if hours:
            return _("{days} d {hours} h").format(days=days, hours=hours)
        return _("{days} d").format(days=days)
    if hours:
        if minutes:
            return _("{hours} h {minutes} min").format(hours=hours, minutes=minutes)
        return _("{hours} h").format(hours=hours)
    return _("{minutes} min").format(minutes=minutes)


# (marker in the User-Agent, name shown), first match wins: Edge and Opera also say "Chrome",
# Chrome also says "Safari".
_BROWSERS = [
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
]
_SYSTEMS = [
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
]


@register.filter
def browser_summary(user_agent: str) -> str:
    """ "Firefox on Windows" from a User-Agent header; the header itself, cut, when neither
    part is recognised (the page shows the whole header on hover)."""
    if not user_agent:
        return _("Unknown browser")
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), "")
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), "")
    if browser and system:
        return _("{browser} on {system}").format(browser=browser, system=system)
    return browser or system or user_agent[:60]
