"""The panel's admin site: the stock AdminSite with the cockpit as its home, the admin pages
that belong to no model (bulk pricing) and the customer login's throttle on its login. Installed
as the default site by panel.apps.PanelAdminConfig (INSTALLED_APPS), so `admin.site` is this
site everywhere."""

from typing import Any

from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache

from accounts.ratelimit import client_ip
from accounts.throttle import (
    login_throttle_clear,
    login_throttle_fail,
    login_throttle_message,
    login_throttle_wait,
)
from catalog.admin_views import bulk_pricing_view
from orders.admin_views import cockpit_view_context
from panel.celery import app as celery_app
from panel.queues import queue_backlog


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """The admin's login form under the customer login's throttle (accounts.throttle): failures
    count per (username, address) and per address, and once over the limit an attempt is
    refused before the password is checked, the right password included. Staff can credit
    balances: their login must not be the one left open to guessing."""

    def clean(self) -> dict[str, Any]:
        username = str(self.data.get("username", ""))[:150]
        ip = client_ip(self.request) if self.request is not None else None
        wait = login_throttle_wait(username=username, ip=ip)
        if wait:
            raise ValidationError(login_throttle_message(wait), code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError:  # a wrong password, or an account that may not use the admin
            login_throttle_fail(username=username, ip=ip)
            raise
        if self.get_user() is not None:  # not when a field was left empty: nothing was checked
            login_throttle_clear(username=username, ip=ip)
        return cleaned


class PanelAdminSite(AdminSite):
    site_header = site_title = "Panel administration"
    index_template = "admin/orders/cockpit_index.html"
    login_form = ThrottledAdminLoginForm

    @method_decorator(never_cache)
    @login_not_required
    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The stock login with ThrottledAdminLoginForm; a throttled attempt answers 429."""
        response = super().login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        if form is not None and form.has_error(NON_FIELD_ERRORS, code="throttled"):
            response.status_code = 429
        return response

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
