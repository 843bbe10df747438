"""The isolation of the workers of a parallel run (tests/parallel.py)."""

import os

import execnet
import pytest
from django.conf import settings

from tests.parallel import ROOT, isolate_worker, shift_redis_db, worker_environment


def test_worker_n_takes_the_redis_database_n_after_the_given_one():
    assert shift_redis_db("redis://127.0.0.1:6379/9", 0) == "redis://127.0.0.1:6379/9"
    assert shift_redis_db("redis://127.0.0.1:6379/9", 1) == "redis://127.0.0.1:6379/10"
    assert shift_redis_db("redis://:pw@cache:6380", 2) == "redis://:pw@cache:6380/2"
    assert shift_redis_db("rediss://h/3?ssl_cert_reqs=none", 1) == "rediss://h/4?ssl_cert_reqs=none"


def test_a_database_past_the_last_one_or_a_bad_url_is_refused():
    with pytest.raises(ValueError, match="database 16, past the last one"):
        shift_redis_db("redis://127.0.0.1:6379/15", 1)
    with pytest.raises(ValueError, match="database number"):
        shift_redis_db("redis://127.0.0.1:6379/cache", 1)
    with pytest.raises(ValueError, match="Not a redis"):
        shift_redis_db("memcached://127.0.0.1", 1)
    with pytest.raises(ValueError, match="worker id"):
        worker_environment("main", {})


def test_each_worker_gets_its_own_redis_database_and_var_dir():
    environ = {"REDIS_URL": "redis://127.0.0.1:6379/9", "PANEL_VAR_DIR": "/srv/var"}
    assert worker_environment("gw1", environ) == {
        "REDIS_URL": "redis://127.0.0.1:6379/10",
        "PANEL_VAR_DIR": "/srv/var/xdist-gw1",
    }
    # A broker of its own follows too; the default var dir is the repository's var/.
    environ = {"REDIS_URL": "redis://r/4", "CELERY_BROKER_URL": "redis://b/6"}
    assert worker_environment("gw0", environ) == {
        "REDIS_URL": "redis://r/4",
        "CELERY_BROKER_URL": "redis://b/6",
        "PANEL_VAR_DIR": str(ROOT / "var" / "xdist-gw0"),
    }


def test_the_worker_process_starts_with_its_environment(monkeypatch):
    """What pytest-xdist's hook does: the new process has the variables before pytest runs."""
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/14")
    gateway = execnet.makegateway("popen//id=gw1")
    try:
        isolate_worker(gateway)
        channel = gateway.remote_exec("import os\nchannel.send(os.environ['REDIS_URL'])\n")
        assert channel.receive(timeout=30) == "redis://127.0.0.1:6379/15"
    finally:
        gateway.exit()


def test_this_run_uses_the_redis_database_of_its_worker():
    """Serial: REDIS_URL as given. In a worker: the one its hook set, read by the settings."""
    url = os.environ.get("REDIS_URL")
    if url:
        assert settings.CACHES["default"]["LOCATION"] == url
        broker = os.environ.get("CELERY_BROKER_URL") or url
        assert broker == settings.CELERY_BROKER_URL
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        assert settings.VAR_DIR.name == f"xdist-{worker}"
