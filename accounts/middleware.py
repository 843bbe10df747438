import zoneinfo
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils import timezone

from accounts.models import User


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
