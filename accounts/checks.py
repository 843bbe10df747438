"""System checks of the accounts app: `manage.py check`, `migrate` and `runserver` run them."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.utils.module_loading import import_string

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


def email_service_problems(*, backend: str, anymail: dict[str, str]) -> list[CheckMessage]:
    """An Error when EMAIL_BACKEND names no importable backend (a typo would only show when the
    first mail fails, in a worker's log), or a django-anymail service without its ANYMAIL_*
    settings (its API key)."""
    try:
        import_string(backend)
    except ImportError:
        return [
            Error(
                f"EMAIL_BACKEND {backend} cannot be imported.",
                hint="Check the spelling, e.g. anymail.backends.mailgun.EmailBackend or "
                "django.core.mail.backends.smtp.EmailBackend (docs/notifications.md).",
                id="accounts.E002",
            )
        ]
    if backend.startswith("anymail.backends.") and ".test." not in backend and not anymail:
        return [
            Error(
                f"EMAIL_BACKEND is {backend} but no ANYMAIL_* setting is set: the service "
                "would refuse every mail.",
                hint="Set the service's key, e.g. ANYMAIL_MAILGUN_API_KEY or "
                "ANYMAIL_POSTMARK_SERVER_TOKEN (docs/notifications.md).",
                id="accounts.E003",
            )
        ]
    return []


@register("security")
def check_email_service(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return email_service_problems(
        backend=settings.EMAIL_BACKEND, anymail=getattr(settings, "ANYMAIL", {})
    )
