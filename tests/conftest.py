import socket
from decimal import Decimal

import pytest

from accounts.services import customer_create


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # No collectstatic before tests: serve from the finders without a manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


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
    return customer_create(username="alice", email="alice@example.com", password="pw-alice-123",
                           opening_balance=Decimal("50.00000"))


@pytest.fixture
def bob(db):
    return customer_create(username="bob", email="bob@example.com", password="pw-bob-123")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("staff", "staff@example.com", "pw-staff-123")
