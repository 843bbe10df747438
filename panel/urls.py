from django.contrib import admin
from django.urls import include, path, re_path

from panel.api_v2 import api_v2
from panel.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),  # panel.admin.PanelAdminSite (panel/apps.py)
    # The reseller API, with and without the trailing slash: a redirect would turn a POST into GET.
    re_path(r"^api/v2/?$", api_v2, name="api_v2"),
    # The customer panel (home, login and logout keep their names: settings.LOGIN_URL uses them).
    path("", include("accounts.urls")),
    path("", include("catalog.urls")),
    path("", include("orders.urls")),
]
