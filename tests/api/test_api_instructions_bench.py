"""bench/api_instructions.py without valgrind's minutes: it answers --help, refuses a repeat
count below 1, and says what it needs when valgrind is not installed, before touching any
database."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path if path is not None else os.environ.get("PATH", "")}
    return subprocess.run(
        [sys.executable, "bench/api_instructions.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_help_names_valgrind_and_the_options():
    run = _run("--help")
    assert run.returncode == 0
    assert "valgrind" in run.stdout and "--repeat" in run.stdout and "--calls" in run.stdout


def test_a_repeat_count_below_one_is_refused():
    run = _run("--repeat", "0")
    assert run.returncode == 2 and "--repeat must be at least 1" in run.stderr


def test_without_valgrind_it_says_what_to_install(tmp_path):
    run = _run("--calls", "balance", path=str(tmp_path))  # an empty PATH: no valgrind
    assert run.returncode == 1
    assert "needs valgrind (Debian: apt-get install valgrind)" in run.stderr
