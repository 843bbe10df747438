"""Markdown rendered and sanitized in a page, the news on the home page and the unread count in
the menu."""

from typing import Any

from django import template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from content.rendering import markdown_html
from content.selectors import announcement_list_for_user, announcement_unread_count

register = template.Library()

HOME_NEWS_COUNT = 3


@register.filter
def markdown(text: str) -> SafeString:
    """Staff's Markdown as HTML: safe to mark so, it went through the allow-list."""
    return mark_safe(markdown_html(text))  # noqa: S308  (content/sanitize.py cleaned it)


@register.inclusion_tag("content/_home_news.html", takes_context=True)
def home_news(context: dict[str, Any]) -> dict[str, Any]:
    """The current news on the customer's home page, pinned first, each marked new until read."""
    user = context["request"].user
    items = list(announcement_list_for_user(user_id=user.pk, now=timezone.now())[:HOME_NEWS_COUNT])
    return {
        "announcements": items,
        "unread_shown": sum(1 for a in items if not getattr(a, "is_read", False)),
        "request": context["request"],
        "csrf_token": context.get("csrf_token"),
    }


@register.simple_tag(takes_context=True)
def news_unread_count(context: dict[str, Any]) -> int:
    """One COUNT query, for a signed-in customer only."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return 0
    return announcement_unread_count(user_id=user.pk, now=timezone.now())
