"""`make run` stopped with Ctrl-C ends cleanly: make exits 0 (no "Error 130", no "Interrupt")
and the worker stops without a pool process killed by signal 15.

The tests run make in a pseudo-terminal and type Ctrl-C into it, so the terminal itself sends
SIGINT to its foreground process group, as for an operator: the real `run` recipe's honcho line
and the real Procfile.dev worker line.
"""

import os
import pty
import re
import select
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _procfile_dev() -> dict[str, str]:
    lines = (ROOT / "Procfile.dev").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def _honcho_line() -> str:
    """The line of the Makefile's `run` recipe that starts honcho."""
    recipe = (ROOT / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    match = re.search(r"^\s*(.*honcho start -f Procfile\.dev.*?)\s*$", recipe, re.MULTILINE)
    assert match, recipe
    return match.group(1)


class Terminal:
    """`make run` in `cwd` on a pseudo-terminal."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.output = b""
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: make, on the terminal
            os.chdir(cwd)
            os.execvpe("make", ["make", "--no-print-directory", "run"], env)

    def read_until(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output and time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the terminal closed: everything exited
                    return text.encode() in self.output
                self.output += chunk
        return text.encode() in self.output

    def exit_status(self, timeout: float) -> int | None:
        """make's exit code; None when it was killed by a signal (or still runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.read_until("\0", 0.2)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.read_until("\0", 0.3)
                return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        return None


def _make_run_then_ctrl_c(tmp_path: Path, procfile: str, ready: str, env: dict[str, str]) -> str:
    (tmp_path / "Procfile.dev").write_text(procfile)
    (tmp_path / "Makefile").write_text(
        f'SHELL := /bin/bash\nrun:\n\t@export PATH="{BIN}:$$PATH"; \\\n\t  {_honcho_line()}\n'
    )
    terminal = Terminal(tmp_path, env)
    try:
        assert terminal.read_until(ready, 60), terminal.output.decode(errors="replace")
        os.write(terminal.fd, b"\x03")  # Ctrl-C
        status = terminal.exit_status(30)
    finally:
        os.close(terminal.fd)
    output = terminal.output.decode(errors="replace")
    assert status == 0, output
    return output


def test_ctrl_c_ends_make_run_with_success(tmp_path):
    sleeper = f"sleeper: {sys.executable} -c \"import time; print('sleeper-is-up', flush=True); time.sleep(60)\"\n"
    output = _make_run_then_ctrl_c(tmp_path, sleeper, "sleeper-is-up", dict(os.environ))
    assert "SIGINT received" in output
    assert "Error 130" not in output and "Interrupt" not in output


def test_the_dev_worker_consumes_every_queue_on_a_thread_pool():
    worker = _procfile_dev()["worker"].split()
    assert worker[:4] == ["celery", "-A", "panel", "worker"]
    assert "--queues" not in worker and "-Q" not in worker  # the declared queues: all of them
    assert worker[worker.index("--pool") + 1] == "threads"  # no pool child to kill at Ctrl-C


@pytest.mark.integration
def test_ctrl_c_stops_the_dev_worker_without_a_pool_process_killed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DEBUG="true", PANEL_VAR_DIR=str(tmp_path / "var"), CELERY_BROKER_URL="")
    procfile = f"worker: cd {ROOT} && {_procfile_dev()['worker']}\n"
    output = _make_run_then_ctrl_c(tmp_path, procfile, " ready.", env)
    assert "Warm shutdown" in output
    assert "exited with 'signal" not in output, output
    assert "worker.1 stopped" in output
    # The embedded broker keeps its broadcast exchanges under var/, not in the working directory.
    assert any((tmp_path / "var" / "broker" / "control").iterdir())
    assert "Error 130" not in output and "Interrupt" not in output


def test_without_a_terminal_a_sigterm_to_make_stops_every_process(tmp_path):
    """Under a supervisor or a script (no terminal), make passes SIGTERM to its child: the
    recipe's shell must be honcho itself, or honcho and the servers outlive make."""
    import signal
    import subprocess

    pid_file = tmp_path / "sleeper.pid"
    sleeper = (
        f"sleeper: {sys.executable} -c \"import os, time; open('{pid_file}', 'w').write("
        f"str(os.getpid())); print('sleeper-is-up', flush=True); time.sleep(60)\"\n"
    )
    (tmp_path / "Procfile.dev").write_text(sleeper)
    (tmp_path / "Makefile").write_text(
        f'SHELL := /bin/bash\nrun:\n\t@export PATH="{BIN}:$$PATH"; \\\n\t  {_honcho_line()}\n'
    )
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid_file.exists()
    time.sleep(0.3)
    make.send_signal(signal.SIGTERM)
    make.communicate(timeout=30)
    sleeper_pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{sleeper_pid}").exists():
        time.sleep(0.1)
    alive = Path(f"/proc/{sleeper_pid}").exists()
    if alive:
        os.kill(sleeper_pid, signal.SIGKILL)
    assert not alive, "the sleeper outlived make"
