from functools import partial
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from accounts.middleware import admin_two_factor_exempt
from accounts.notifications import notification_unread_count
from accounts.selectors import display_rate_for_user
from accounts.views import theme_of


def panel(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    exempt = bool(user is not None and user.is_authenticated and user.is_staff) and (
        admin_two_factor_exempt(user)
    )
    return {
        # The bell's count: a callable, so the COUNT runs only when a page shows the bell
        # (once, base.html keeps it in a {% with %}), never for an htmx fragment.
        "notifications_unread": (
            partial(notification_unread_count, user=user)
            if user is not None and user.is_authenticated
            else None
        ),
        "PANEL_NAME": settings.PANEL_NAME,
        "PANEL_CURRENCY": settings.PANEL_CURRENCY,
        # light / dark / auto: <html data-bs-theme> (base.html; auto resolved by panel/theme.js).
        "PANEL_THEME": theme_of(request),
        # Prices and the balance show in it, with the panel's beside (`|money:display_currency`,
        # docs/money.md); None: only the panel's currency. A query only for a customer who chose one.
        "display_currency": (
            display_rate_for_user(user=user) if user is not None and user.is_authenticated else None
        ),
        # The admin's banner: this staff member skips the second factor (DEBUG only).
        "ADMIN_2FA_EXEMPT": exempt,
    }
