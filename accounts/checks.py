"""System checks of the accounts app: `manage.py check`, `migrate` and `runserver` run them."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

# Backends that keep mail on this machine: a password-reset link lands in the log (console),
# in files (filebased) or nowhere (locmem), readable by whoever reads those, never by the customer.
LOCAL_EMAIL_BACKENDS = frozenset(
    {
        "django.core.mail.backends.console.EmailBackend",
        "django.core.mail.backends.filebased.EmailBackend",
        "django.core.mail.backends.locmem.EmailBackend",
    }
)


def email_backend_problems(*, debug: bool, backend: str, allowed: bool) -> list[CheckMessage]:
    """An Error when production (DEBUG off) would print or keep its mails locally."""
    if debug or allowed or backend not in LOCAL_EMAIL_BACKENDS:
        return []
    return [
        Error(
            f"EMAIL_BACKEND is {backend} while DEBUG is off: password-reset links would end up "
            "in the logs or on disk instead of the customer's mailbox.",
            hint="Set EMAIL_BACKEND to one that delivers (e.g. "
            "django.core.mail.backends.smtp.EmailBackend), or ALLOW_CONSOLE_EMAIL=true if "
            "mail staying on this machine is really wanted.",
            id="accounts.E001",
        )
    ]


@register("security")
def check_email_backend(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return email_backend_problems(
        debug=settings.DEBUG,
        backend=settings.EMAIL_BACKEND,
        allowed=getattr(settings, "ALLOW_CONSOLE_EMAIL", False),
    )
