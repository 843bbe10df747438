import socket
from io import StringIO

import pytest
from django.core.management import call_command

from catalog.models import Service, UpstreamService
from providers.models import Provider
from providers.sandbox.testing import SandboxServer

pytestmark = pytest.mark.django_db


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _seed(url: str) -> str:
    out = StringIO()
    call_command("seed_demo", "--sandbox-url", url, stdout=out)
    return out.getvalue()


def test_seed_demo_registers_a_running_sandbox_and_imports_its_catalog(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    with SandboxServer() as sandbox:
        first = _seed(sandbox.url)
        second = _seed(sandbox.url)
    provider = Provider.objects.get(name="Sandbox")
    assert provider.api_url == sandbox.url
    upstream_count = UpstreamService.objects.filter(provider=provider).count()
    assert upstream_count >= 14  # every order type of the seeds at least once
    assert Service.objects.filter(upstream__provider=provider).count() == upstream_count
    assert "sandbox services on sale" in first
    assert "sandbox services on sale" not in second  # nothing done twice
    assert Provider.objects.count() == 1


def test_seed_demo_starts_a_sandbox_for_the_first_sync_when_none_answers(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    output = _seed(f"http://127.0.0.1:{_free_port()}/api/v2")
    assert "sandbox services on sale" in output
    assert Service.objects.filter(is_enabled=True).exists()
    assert (tmp_path / "sandbox.sqlite3").exists()
