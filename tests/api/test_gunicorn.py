"""gunicorn as the images run it (gunicorn.conf.py): the access log never holds a query string
(the API accepts `key` in one), a GET line up to gunicorn's maximum reaches the panel, and a file
part is refused before it is spooled."""

import os
import re
import runpy
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.db import connection
from gunicorn.config import Config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "gunicorn.conf.py"


def _settings() -> dict:
    return {k: v for k, v in runpy.run_path(str(CONFIG)).items() if not k.startswith("_")}


def test_the_access_log_format_has_no_query_string():
    values = _settings()
    config = Config()
    for name, value in values.items():
        config.set(name, value)  # an unknown name or a bad value raises here
    log_format = config.access_log_format
    assert "%(r)s" not in log_format  # the request line: path AND query string
    assert "%(q)s" not in log_format  # the query string
    assert "%(f)s" not in log_format  # the Referer: another page's full URL
    assert "%(U)s" in log_format  # the path alone
    assert config.accesslog == "-"
    assert config.limit_request_line == 8190  # gunicorn's maximum (its default is 4094)


def test_the_images_run_gunicorn_with_the_config():
    dockerfile = (ROOT / "Dockerfile").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    for text in (dockerfile, compose):
        assert "--config gunicorn.conf.py" in text or '"--config", "gunicorn.conf.py"' in text
        assert "--access-logfile" not in text  # the config's format, not the default one


# --- gunicorn itself, against the test database ---------------------------------------------------


def _database_url() -> str:
    db = connection.settings_dict
    user, host, port = db["USER"] or "postgres", db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    auth = f"{user}:{db['PASSWORD']}" if db["PASSWORD"] else user
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gunicorn(django_db_setup, tmp_path_factory):
    """gunicorn with the repository's config, on a free loopback port, against the test
    database (the tests are transactional, so it sees their rows); yields (url, log path)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DATABASE_CONN_MAX_AGE": "0",
        "DEBUG": "true",
    }
    env.pop("GUNICORN_CMD_ARGS", None)
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "panel.wsgi", "--config", str(CONFIG)),
                *("--bind", f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket"),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api/v2"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(url, timeout=15)
                break
            except (requests.ConnectionError, requests.Timeout):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log.read_text()[-3000:]) from None
                time.sleep(0.2)
        yield url, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
class TestGunicorn:
    def test_gunicorn_access_log_has_no_query_string(self, gunicorn, alice_key):
        url, log = gunicorn
        answer = requests.get(url, params={"key": alice_key, "action": "balance"}, timeout=10)
        assert answer.json() == {"balance": "50.00000", "currency": "USD"}
        time.sleep(0.5)  # the access log line is written after the answer
        text = log.read_text()
        assert re.search(r'"GET /api/v2 HTTP/1\.1" 200', text), text[-2000:]
        assert alice_key not in text and "action=" not in text and "/api/v2?" not in text

    def test_gunicorn_takes_a_get_line_up_to_its_maximum(self, gunicorn, alice_key):
        # A GET line of about 5,700 characters: over gunicorn's default 4094, which answered it
        # with its own HTML 414 page.
        url, _log = gunicorn
        ids = ",".join(str(n) for n in range(10**6, 10**6 + 700))
        params = {"key": alice_key, "action": "status", "orders": ids}
        answer = requests.get(url, params=params, timeout=10)
        assert answer.status_code == 200, answer.text[:300]
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.json() == {
            "error": 'Too many ids in "orders": at most 100 per call, 700 were sent.'
        }

    def test_gunicorn_refuses_a_file_part_in_json(self, gunicorn, alice_key):
        url, _log = gunicorn
        upload = requests.post(
            url,
            data={"key": alice_key, "action": "balance"},
            files={"upload": ("a.bin", b"x" * 100_000)},
            timeout=10,
        )
        assert upload.json() == {
            "error": "File uploads are not accepted: send the parameters as form fields or JSON."
        }
