"""Small template helpers for the customer panel: Bootstrap classes on form widgets, money
and rate formatting, durations."""

from datetime import timedelta
from decimal import Decimal

from django import forms, template
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from catalog.pricing import money_text, quantize_rate, trimmed_text

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


_trimmed = trimmed_text


@register.filter
def money(value) -> str:
    """12.50000 → "12.50", 0.27819 → "0.27819": at least 2 places, never rounded away."""
    if value is None or value == "":
        return ""
    return money_text(Decimal(value))


@register.filter
def signed_money(value) -> str:
    text = money(value)
    return text if text.startswith("-") or not text else f"+{text}"


@register.filter
def rate(value) -> str:
    if value is None or value == "":
        return ""
    return _trimmed(quantize_rate(Decimal(value)), 8)


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
