"""The beat sweeps run by a REAL Celery worker process on Redis against the test database
(transactional test: the worker sees committed rows) and a loopback upstream over HTTP."""

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
import redis
from django.db import connection

from catalog.models import UpstreamService
from catalog.tasks import catalog_sync_sweep
from panel.celery import app as celery_app
from providers.models import Provider
from providers.services import provider_create
from providers.tasks import provider_check_balances_sweep
from tests.catalog.upstream import CatalogServer, item

REDIS_URL = os.environ.get("REDIS_URL", "")
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not REDIS_URL, reason="needs PostgreSQL and Redis"
    ),
]


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] or "postgres"
    if db["PASSWORD"]:
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(settings, tmp_path):
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()  # this helper's own Redis database
    # Read before changing the Django setting: the Celery conf reads through to it, so reading
    # after would "restore" False and leave every later test in the session without eager tasks.
    old = celery_app.conf.task_always_eager, celery_app.conf.broker_url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.task_always_eager, celery_app.conf.broker_url = False, REDIS_URL
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DEBUG": "true",
    }
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "panel", "worker", "-Q", "default,provider_io",
         "-c", "1", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    yield tmp_path / "worker.log"
    os.killpg(process.pid, signal.SIGKILL)  # the worker's own process group only
    process.wait(timeout=10)
    log.close()
    celery_app.conf.task_always_eager, celery_app.conf.broker_url = old
    client.flushdb()


def _wait(predicate, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out; worker log:\n" + log.read_text()[-3000:])


def test_sweeps_fan_out_to_a_real_worker(worker):
    with CatalogServer([item(i) for i in range(1, 31)]) as good, CatalogServer() as bad:
        good.balance = D("42.5")
        ok = provider_create(name="good", api_url=good.url, api_key=good.key)
        failing = provider_create(name="bad", api_url=bad.url, api_key="wrong")
        catalog_sync_sweep.delay()
        provider_check_balances_sweep.delay()
        _wait(lambda: Provider.objects.filter(pk=ok.pk, balance=D("42.5")).exists(), worker)
        _wait(lambda: Provider.objects.get(pk=failing.pk).last_sync_error != "", worker)
        _wait(lambda: Provider.objects.get(pk=ok.pk).last_sync_at is not None, worker)
    assert UpstreamService.objects.filter(provider=ok).count() == 30
    assert "Invalid API key" in Provider.objects.get(pk=failing.pk).last_sync_error
    assert not UpstreamService.objects.filter(provider=failing).exists()
