import logging
import zoneinfo
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import User
from accounts.security import session_activity_record

logger = logging.getLogger(__name__)


class AuthenticatedHttpRequest(HttpRequest):
    """For type checking: the request a view behind login_required or customer_login_required
    gets, whose user is a signed-in User (never AnonymousUser)."""

    user: User


class UserTimezoneMiddleware:
    """Show times in the signed-in customer's own time zone (User.timezone); UTC otherwise."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        user = getattr(request, "user", None)
        name = getattr(user, "timezone", "") if user is not None and user.is_authenticated else ""
        try:
            timezone.activate(zoneinfo.ZoneInfo(name)) if name else timezone.deactivate()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


# Pages that stay English whatever the customer chose: the admin (its own templates are not
# translated, and a half-Russian admin helps nobody) and /api/v2, whose error strings resellers'
# scripts compare byte for byte.
ENGLISH_ONLY_PREFIXES = ("/admin/", "/api/v2")


def user_language(user: Any) -> str:
    """The signed-in user's saved language when it is one the panel offers, else ""."""
    code = getattr(user, "language", "") if user is not None and user.is_authenticated else ""
    return code if code in dict(settings.LANGUAGES) else ""


class UserLanguageMiddleware:
    """After LocaleMiddleware (cookie, then Accept-Language) and the authentication: a signed-in
    customer's saved language (User.language) comes first, on every device; the admin and the
    reseller API are English. LocaleMiddleware's response half then names the language
    (Content-Language) of what was activated here."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info.startswith(ENGLISH_ONLY_PREFIXES):
            code = settings.LANGUAGE_CODE
        else:
            code = user_language(getattr(request, "user", None))
        if code:
            translation.activate(code)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


def customer_login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's login_required, except for htmx: a poll or a fragment asked for after the
    session ended would follow the redirect and swap the whole login page into the order row
    (or blank the progress). htmx gets a 401 with HX-Redirect instead, and the browser goes to
    the login page, coming back to the page it was on."""
    plain = login_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated or not request.headers.get("HX-Request"):
            return plain(request, *args, **kwargs)
        try:
            current = urlsplit(request.headers.get("HX-Current-URL", ""))
        except ValueError:
            current = urlsplit("")
        back = (current.path or "/") + (f"?{current.query}" if current.query else "")
        response = HttpResponse("Your session has ended: please log in again.", status=401)
        response["HX-Redirect"] = redirect_to_login(back)["Location"]
        return response

    return wrapper


def admin_two_factor_exempt_name(username: str) -> bool:
    """The demo admin may skip the second factor, with DEBUG on only (PANEL_ADMIN_2FA_EXEMPT)."""
    return bool(settings.DEBUG and username in getattr(settings, "PANEL_ADMIN_2FA_EXEMPT", []))


def admin_two_factor_exempt(user: Any) -> bool:
    return admin_two_factor_exempt_name(user.get_username())


class AdminTwoFactorMiddleware:
    """Staff can credit any balance: a staff member signed in without an activated second
    factor (allauth.mfa: an authenticator app or a passkey) is sent to set one up before any
    admin page opens. The admin's login itself is allauth's (panel.admin.PanelAdminSite.login),
    so a staff member who has one is asked for it when signing in."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if self._must_set_up(request):
            messages.warning(
                request,
                "Staff need a second factor for the administration: set up an authenticator "
                "app (or a passkey), then open the administration again.",
            )
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        return self.get_response(request)

    @staticmethod
    def _must_set_up(request: HttpRequest) -> bool:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_staff or not user.is_active:
            return False
        admin_root = reverse("admin:index")
        if not request.path.startswith(admin_root) or request.path in (
            reverse("admin:login"),
            reverse("admin:logout"),
        ):
            return False
        return not admin_two_factor_exempt(user) and not is_mfa_enabled(user)


class SessionActivityMiddleware:
    """Keep the Security page's list of sessions (accounts.models.UserSession) true: the last
    time and address a session was seen, written at most once every PANEL_SESSION_SEEN_SECONDS
    (the time of the last write lives in the session itself, so a request in between costs no
    query), and the new key of a session whose key changed during the request (a password
    change cycles it). Goes after AuthenticationMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        session = getattr(request, "session", None)
        key_before = session.session_key if session is not None else None
        response = self.get_response(request)
        if session is not None and SESSION_KEY in session:
            try:
                self._track(request, key_before)
            except Exception:  # a side record must never cost the customer the page
                logger.exception("session activity: could not record session")
        return response

    def _track(self, request: HttpRequest, key_before: str | None) -> None:
        user = request.user
        if user.is_authenticated:
            session_activity_record(
                user=user,
                request=request,
                key_changed=request.session.session_key != key_before,
                interval=getattr(settings, "PANEL_SESSION_SEEN_SECONDS", 300),
            )
