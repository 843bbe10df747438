from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path, re_path

from panel.api_v2 import api_v2
from panel.health import healthz


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask /favicon.ico on pages that name no icon (error pages, raw API replies)."""
    return HttpResponseRedirect(static("favicon.ico"))


urlpatterns = [
    # The reseller API, with and without the trailing slash: a redirect would turn a POST into GET.
    # First: it is the most called URL, and Django tries the patterns in order.
    re_path(r"^api/v2/?$", api_v2, name="api_v2"),
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),  # panel.admin.PanelAdminSite (panel/apps.py)
    # django-allauth: sign-up, login, logout, e-mail, password, two-factor (docs/customer-panel.md).
    path("accounts/", include("allauth.urls")),
    # The customer panel; its old /login/, /signup/... paths redirect to allauth's.
    path("", include("accounts.urls")),
    path("", include("catalog.urls")),
    path("", include("orders.urls")),
    # News for customers and the site pages (/terms/, /faq/, /privacy/), docs/content.md.
    path("", include("content.urls")),
    path("", include("support.urls")),
]
