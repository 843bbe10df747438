"""The load test's pieces, without any load (docs/performance.md): the locustfile imports and its
task mix is the documented one, and bench/load_test.py answers --help and refuses bad options.

locust monkey-patches the standard library with gevent as it is imported, so the locustfile is
imported in a subprocess, never in the test process."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_MIX = {"status": 80, "add": 10, "balance": 5, "services": 5}

PROBE = """
import json, sys
from collections import Counter
sys.path.insert(0, "bench")
import locustfile
from locust import FastHttpUser
user = locustfile.Reseller
print(json.dumps({
    "weights": Counter(t.__name__ for t in user.tasks),
    "mix": locustfile.MIX,
    "fast_http": issubclass(user, FastHttpUser),
    "pacing": [c.cell_contents for c in user.wait_time.__closure__],
}))
"""


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_the_locustfile_sends_the_documented_mix():
    result = _run("-c", PROBE, env={"PANEL_LOAD_USER_RATE": "2.5"})
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    # locust repeats each @task by its weight: the counts are the mix out of 100.
    assert probe["weights"] == DOCUMENTED_MIX
    assert probe["mix"] == DOCUMENTED_MIX
    assert probe["fast_http"]
    # constant_throughput(2.5): one call started every 0.4 s per user, however long calls take.
    assert probe["pacing"] == [0.4]


def test_the_docs_state_the_same_mix():
    text = (ROOT / "docs/performance.md").read_text()
    for kind, share in DOCUMENTED_MIX.items():
        assert re.search(rf"\|\s*`?{kind}\b[^|]*\|\s*{share}\s*%", text), kind


def test_load_test_help_works():
    result = _run("bench/load_test.py", "--help")
    assert result.returncode == 0, result.stderr
    for option in (
        "--rate",
        "--duration",
        "--step-rates",
        "--workers",
        "--worker-class",
        "--debug",
    ):
        assert option in result.stdout


def test_load_test_refuses_bad_options_before_touching_anything():
    for args in (
        ["--configs", "eventlet:2"],
        ["--configs", "sync:2:4"],
        ["--step-rates", "50,20"],
        ["--worker-class", "sync", "--threads", "4"],
        ["--orders", "10"],
    ):
        result = _run("bench/load_test.py", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "error:" in result.stderr, args
