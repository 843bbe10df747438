import os
import socket
from decimal import Decimal

import pytest

from accounts.services import customer_create
from tests.parallel import isolate_worker
from tests.totp import give_second_factor

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, absent with -p no:xdist
def pytest_xdist_newgateway(gateway):
    """A parallel run's worker gets its own Redis database and var/ dir (tests/parallel.py)."""
    isolate_worker(gateway)


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Uploaded files (support tickets' attachments) go to the test's own directory.
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # No collectstatic before tests: serve from the finders without a manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache, as with a database of its own: no rate-limit
    counter, used TOTP code or cached figure of a test that ran before it on this worker."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _no_outside_network(monkeypatch):
    """Unit tests never leave the machine: only loopback and unix sockets may be reached."""
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
                raise RuntimeError(f"Tests must not reach the outside network ({host}).")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture
def alice(db):
    return customer_create(
        username="alice",
        email="alice@example.com",
        password="pw-alice-123",
        opening_balance=Decimal("50.00000"),
    )


@pytest.fixture
def bob(db):
    return customer_create(username="bob", email="bob@example.com", password="pw-bob-123")


@pytest.fixture
def staff(django_user_model):
    user = django_user_model.objects.create_superuser("staff", "staff@example.com", "pw-staff-123")
    give_second_factor(user)  # staff open the admin only with a second factor
    return user


@pytest.fixture
def admin_user(django_user_model):
    """pytest-django's admin_user (and so admin_client), with the second factor staff need."""
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "password")
    give_second_factor(user)
    return user


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium (Debian's package, driven by Playwright) for the whole session:
    Playwright's sync API runs an event loop, and two at once in one thread collide."""
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: run scripts/ensure_chromium.sh"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must never pass by skipping the browser
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # The ORM calls tests make between browser steps run in the thread of Playwright's loop.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
