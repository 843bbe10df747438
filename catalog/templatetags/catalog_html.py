"""Template filters for catalog text: the one place a service description is marked safe."""

from django import template
from django.utils.safestring import SafeString, mark_safe

from catalog.services.descriptions import description_html

register = template.Library()


@register.filter(name="description_html")
def description_html_filter(value: object) -> SafeString:
    """A service description as sanitized HTML (catalog.services.descriptions): the allowed
    tags rendered, everything else dropped, plain-text line breaks kept."""
    # Safe because description_html passed it through nh3's allow-list just now.
    return mark_safe(description_html("" if value is None else str(value)))  # noqa: S308
