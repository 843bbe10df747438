"""The panel's admin site: the stock AdminSite with the cockpit as its home, the admin pages
that belong to no model (bulk pricing) and allauth's login in place of its own (the staff's second
factor: accounts.middleware.AdminTwoFactorMiddleware). Installed
as the default site by panel.apps.PanelAdminConfig (INSTALLED_APPS), so `admin.site` is this
site everywhere."""

from typing import Any

from allauth.account.decorators import secure_admin_login
from django.contrib.admin import AdminSite
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache

from catalog.admin_views import bulk_pricing_view
from orders.admin_views import cockpit_view_context
from panel.celery import app as celery_app
from panel.queues import queue_backlog


class PanelAdminSite(AdminSite):
    site_header = site_title = "Panel administration"
    index_template = "admin/orders/cockpit_index.html"

    @method_decorator(never_cache)
    @login_not_required
    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """No login form of its own: allauth's (rate limited, with the second factor) with
        next= the admin page asked for. A signed-in user who is not staff gets a 403."""
        return secure_admin_login(super().login)(request, extra_context)

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        """The stock admin home (the app list) with the cockpit above it (orders/admin_views.py)."""
        context = {**cockpit_view_context(request), **(extra_context or {})}
        if context.get("cockpit"):  # the broker's queues are plumbing: read here, not in orders
            context["queue_backlog"] = queue_backlog(app=celery_app)
        return super().index(request, extra_context=context)

    def bulk_pricing(self, request: HttpRequest) -> HttpResponse:
        return bulk_pricing_view(request, site=self)

    def get_urls(self) -> list[URLPattern | URLResolver]:
        """The stock URLs (`admin:index` included) plus /pricing/bulk/ (`admin:pricing_bulk`)."""
        return [
            path("pricing/bulk/", self.admin_view(self.bulk_pricing), name="pricing_bulk"),
            *super().get_urls(),
        ]
