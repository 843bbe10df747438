import pytest
from django.core.management import call_command

from tests.orders.factories import make_provider
from tests.orders.sandbox import KEY, Sandbox


@pytest.fixture(scope="session")
def _sandbox_server():
    server = Sandbox(speed=60.0)
    yield server
    server.close()


@pytest.fixture
def sandbox(_sandbox_server):
    """The sandbox provider over HTTP, reset: no orders, no faults, balance 1000."""
    _sandbox_server.reset()
    yield _sandbox_server
    _sandbox_server.control("DELETE", "faults")


@pytest.fixture
def provider(db, sandbox):
    return make_provider(api_url=sandbox.api_url, key=KEY, name="sandbox", read_timeout=5)


@pytest.fixture
def ledger_clean():
    """Call after a test's money moved: check_ledger raises CommandError on any mismatch, and
    so does order_summary --check when the cockpit's daily summary or an order counter is off."""

    def check() -> None:
        call_command("check_ledger", verbosity=0)
        call_command("order_summary", check=True, verbosity=0)

    return check
