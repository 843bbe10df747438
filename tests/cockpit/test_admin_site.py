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
from django.test import override_settings
from django.urls import reverse

import accounts.admin
from accounts.throttle import login_throttle_wait
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


# --- The admin's login is throttled like the customer's ----------------------------------------


@pytest.fixture
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def admin_login(client, password, username="staff", **extra):
    form = {"username": username, "password": password, "next": "/admin/"}
    return client.post(reverse("admin:login"), form, **extra)


@pytest.mark.django_db
@pytest.mark.usefixtures("_empty_cache")
def test_thirty_wrong_admin_passwords_then_the_right_one_is_refused(client, staff):
    # Staff can credit balances; /admin/login/ let a guesser try for ever.
    for _ in range(30):
        assert admin_login(client, "wrong").status_code in (200, 429)
    response = admin_login(client, "pw-staff-123")
    assert response.status_code == 429
    assert "Too many failed attempts to sign in" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address is not locked out, and a good login clears its own failures.
    other = {"REMOTE_ADDR": "10.0.0.9"}
    assert admin_login(client, "wrong", **other).status_code == 200
    assert admin_login(client, "pw-staff-123", **other).status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)


@pytest.mark.django_db
@pytest.mark.usefixtures("_empty_cache")
def test_admin_login_counts_like_the_customer_login(client, staff, alice, settings):
    settings.LOGIN_THROTTLE_ATTEMPTS = 3
    assert admin_login(client, "wrong").status_code == 200
    assert admin_login(client, "wrong").status_code == 200
    # An empty field checks no password: it neither counts nor clears the failures.
    assert admin_login(client, "").status_code == 200
    assert login_throttle_wait(username="staff", ip="127.0.0.1") == 0
    assert admin_login(client, "wrong").status_code == 200
    assert admin_login(client, "pw-staff-123").status_code == 429
    # The count is the customer login's: the pair is throttled there too.
    assert login_throttle_wait(username="staff", ip="127.0.0.1") > 0
    # A customer's right password is refused by the admin and counts as a failure.
    for _ in range(3):
        assert admin_login(client, "pw-alice-123", username="alice").status_code == 200
    assert admin_login(client, "pw-alice-123", username="alice").status_code == 429


@pytest.mark.django_db
def test_a_cache_outage_never_breaks_the_admin_login(client, staff, caplog):
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        }
    }
    with override_settings(CACHES=unreachable):
        assert admin_login(client, "wrong").status_code == 200
        assert admin_login(client, "pw-staff-123").status_code == 302
    assert "login throttle: the cache failed" in caplog.text
