"""The admin site is panel.admin.PanelAdminSite, installed by panel.apps.PanelAdminConfig
(AdminConfig.default_site); no import patches an admin site."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.contrib import admin
from django.core.cache import cache
from django.urls import reverse

import accounts.admin
from panel.admin import PanelAdminSite

ROOT = Path(__file__).resolve().parents[2]


def test_the_default_admin_site_is_the_panel_site():
    assert isinstance(admin.site, PanelAdminSite)
    assert admin.site.site_header == admin.site.site_title == "Panel administration"
    assert admin.site.index_template == "admin/orders/cockpit_index.html"
    names = {getattr(p, "name", None) for p in admin.site.get_urls()}
    assert {"index", "pricing_bulk"} <= names
    assert reverse("admin:pricing_bulk") == "/admin/pricing/bulk/"
    # The class's get_urls, not one patched onto the instance.
    assert "get_urls" not in vars(admin.site._wrapped)


def test_accounts_admin_imports_nothing_from_panel():
    modules = {
        getattr(v, "__module__", getattr(v, "__name__", "")) for v in vars(accounts.admin).values()
    }
    assert not any(str(m).startswith("panel") for m in modules)


def test_importing_accounts_admin_installs_nothing():
    # A stock django.contrib.admin in a fresh interpreter: after every admin.py ran
    # (accounts/admin.py included), the default site is the stock one, untouched.
    code = textwrap.dedent(
        """
        import django
        from django.conf import settings

        settings.INSTALLED_APPS = [
            "django.contrib.admin" if app == "panel.apps.PanelAdminConfig" else app
            for app in settings.INSTALLED_APPS
        ]
        django.setup()
        import accounts.admin  # noqa: F401
        from django.contrib import admin
        from django.contrib.admin import AdminSite

        assert type(admin.site._wrapped) is AdminSite, type(admin.site._wrapped)
        assert admin.site.index_template is None
        assert "get_urls" not in vars(admin.site._wrapped)
        names = {getattr(p, "name", None) for p in admin.site.get_urls()}
        assert "pricing_bulk" not in names, names
        print("stock")
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "panel.settings", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "stock"


# --- The admin's login is allauth's (rate limited, with the second factor) -----------------------


@pytest.fixture
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_the_admin_login_sends_to_allauths_login_with_next(client, staff):
    response = client.get(reverse("admin:login") + "?next=/admin/orders/order/")
    assert response.status_code == 302
    assert response["Location"] == reverse("account_login") + "?next=%2Fadmin%2Forders%2Forder%2F"
    # Its old form is gone: a POST of a right password there signs nobody in.
    form = {"username": "staff", "password": "pw-staff-123", "next": "/admin/"}
    assert client.post(reverse("admin:login"), form).status_code == 302
    assert "_auth_user_id" not in client.session
    # Any admin page sends an anonymous visitor the same way.
    page = client.get("/admin/orders/order/")
    assert page["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
@pytest.mark.usefixtures("_empty_cache")
def test_thirty_wrong_staff_passwords_then_the_right_one_is_refused(client, staff):
    # Staff can credit balances: their login must not be open to guessing either.
    form = {"login": "staff", "password": "wrong"}
    for _ in range(30):
        client.post(reverse("account_login") + "?next=/admin/", form)
    response = client.post(
        reverse("account_login") + "?next=/admin/", {**form, "password": "pw-staff-123"}
    )
    # Refused at the form (failures per login) or, past allauth's "login" limit of 30 a minute
    # per address, before the form (429).
    assert response.status_code == 429 or (
        "Too many failed login attempts" in response.content.decode()
    )
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_signed_in_customer_gets_403_from_the_admin_login(alice_client_plain):
    assert alice_client_plain.get(reverse("admin:login")).status_code == 403


@pytest.fixture
def alice_client_plain(client, alice):
    client.force_login(alice)
    return client
