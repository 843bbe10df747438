"""Helpers for tests that talk to the sandbox provider over real HTTP.

``SandboxServer`` runs the server in a background thread of the test process;
``SandboxProcess`` runs it as a separate process (``python -m providers.sandbox``), for tests
that need to kill or restart it, or that run the panel in other processes. Both bind a free
loopback port, use a temporary state file unless given one, and share the same control methods::

    with SandboxServer(speed=1) as sandbox:
        provider = Provider(api_url=sandbox.url, api_key=sandbox.key)
        sandbox.set_fault("timeout", actions=["add"], count=1, seconds=2)
        ...
        assert len(sandbox.orders(link=order.link)) == 1

Standard library only (urllib), so it adds nothing to the server's dependencies.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from providers.sandbox.server import (
    API_PATH,
    DEFAULT_KEY,
    SandboxConfig,
    SandboxHTTPServer,
    make_server,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEST_SPEED = 2.0


class SandboxControlError(RuntimeError):
    """The control API refused a request (bad key, bad fault spec...)."""


class SandboxControl:
    """Calls to the API and the control API; subclasses set `base_url` and `key`."""

    base_url: str = ""
    key: str = DEFAULT_KEY
    http_timeout: float = 10.0

    @property
    def url(self) -> str:
        """The API v2 URL to give the panel as the provider's endpoint."""
        return self.base_url + API_PATH

    def _request(self, method: str, path: str, payload: Any = None, form: bool = False) -> Any:
        headers = {"X-Sandbox-Key": self.key}
        data = None
        if payload is not None and form:
            data = urllib.parse.urlencode(payload).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        # Always our own http://127.0.0.1 base URL, never a caller-chosen scheme.
        request = urllib.request.Request(  # noqa: S310
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.http_timeout) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise SandboxControlError(f"{method} {path}: {exc.code} {exc.read()!r}") from None

    def call(self, action: str, **params: Any) -> Any:
        """One API v2 request (form-encoded POST, as PHP clients send it); the parsed JSON."""
        fields = {"key": self.key, "action": action}
        fields.update({k: str(v) for k, v in params.items() if v is not None})
        return self._request("POST", API_PATH, fields, form=True)

    def set_fault(
        self,
        mode: str,
        *,
        actions: str | Iterable[str] | None = None,
        count: int | None = None,
        seconds: float | None = None,
        status: int | None = None,
        message: str | None = None,
        body: str | None = None,
    ) -> dict[str, Any]:
        """Switch a fault on; see providers/sandbox/faults.py for the modes."""
        spec: dict[str, Any] = {"mode": mode}
        if actions is not None:
            spec["actions"] = [actions] if isinstance(actions, str) else list(actions)
        extras = {"count": count, "seconds": seconds, "status": status}
        spec.update({k: v for k, v in extras.items() if v is not None})
        spec.update({k: v for k, v in {"message": message, "body": body}.items() if v is not None})
        return self._request("POST", "/_sandbox/faults", spec)["fault"]

    def faults(self) -> list[dict[str, Any]]:
        return self._request("GET", "/_sandbox/faults")["faults"]

    def clear_faults(self) -> None:
        self._request("DELETE", "/_sandbox/faults")

    def log(self, action: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """Logged API requests, oldest first (params without the key)."""
        query = urllib.parse.urlencode({"action": action or "", "since": since})
        return self._request("GET", f"/_sandbox/log?{query}")["requests"]

    def orders(self, link: str | None = None) -> list[dict[str, Any]]:
        """Every order the sandbox holds, optionally only those for one exact link."""
        query = "?" + urllib.parse.urlencode({"link": link}) if link else ""
        return self._request("GET", f"/_sandbox/orders{query}")["orders"]

    def reset(self) -> None:
        """Forget orders, refills, cancels, the log and faults; restore balance and speed."""
        self._request("POST", "/_sandbox/reset", {})

    def balance(self) -> Decimal:
        return Decimal(self._request("GET", "/_sandbox/balance")["balance"])

    def set_balance(self, amount: Decimal | str | int, currency: str | None = None) -> None:
        payload = {"balance": str(amount)}
        if currency:
            payload["currency"] = currency
        self._request("POST", "/_sandbox/balance", payload)

    def set_speed(self, seconds: float) -> None:
        """Lifetime of orders created from now on (0: they complete at once)."""
        self._request("POST", "/_sandbox/config", {"speed": seconds})

    def set_dialect(self, dialect: str, refuse: Iterable[str] = ()) -> dict[str, Any]:
        """Answer like one seed provider (``helposmm``, ``full``), refusing `refuse` rules too
        (``status:orders``...): see providers/sandbox/dialects.py. Returns the settings."""
        payload = {"dialect": dialect, "refuse": list(refuse)}
        return self._request("POST", "/_sandbox/config", payload)


class _StateDir:
    """A temporary folder for the state file, unless the caller chose a path."""

    def __init__(self, db_path: str | Path | None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if db_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sandbox-")
            db_path = Path(self._tmp.name) / "sandbox.sqlite3"
        self.db_path = str(db_path)

    def cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


class _Running(SandboxControl):
    """Start/stop as a context manager, on a state directory removed at the end."""

    _state: _StateDir

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self) -> Self:
        """Stop and start again on the same port and state file (state must survive)."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._state.cleanup()


class SandboxServer(_Running):
    """The sandbox in a background thread of this process, on a free loopback port."""

    def __init__(
        self,
        *,
        db_path: str | Path | None = None,
        key: str = DEFAULT_KEY,
        speed: float = DEFAULT_TEST_SPEED,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        """`options` are further SandboxConfig fields (balance, services, faults, ...)."""
        self.key = key
        self._state = _StateDir(db_path)
        self._clock = clock
        self._options = {"speed": speed, "quiet": True, "keys": (key,), **options}
        self._port = 0
        self.server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def db_path(self) -> str:
        return self._state.db_path

    def start(self) -> Self:
        config = SandboxConfig(
            host="127.0.0.1", port=self._port, db_path=self.db_path, **self._options
        )
        self.server = make_server(config, clock=self._clock)
        self._port = self.server.port  # a restart comes back on the same port
        self.base_url = self.server.base_url
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.01},  # stop() waits up to one interval
            name=f"sandbox-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.server is None:
            return
        self.server.shutdown()
        self.server.close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self.server = None


class SandboxProcess(_Running):
    """The sandbox as a child process (``python -m providers.sandbox --port 0 --print-port``)."""

    def __init__(
        self,
        *,
        db_path: str | Path | None = None,
        key: str = DEFAULT_KEY,
        speed: float = DEFAULT_TEST_SPEED,
        args: Iterable[str] = (),
        startup_timeout: float = 15.0,
    ) -> None:
        """`args` are extra command-line flags, e.g. ``["--services", "5000"]``."""
        self.key = key
        self.speed = speed
        self.extra_args = list(args)
        self.startup_timeout = startup_timeout
        self._state = _StateDir(db_path)
        self._port = 0
        self.process: subprocess.Popen[str] | None = None

    @property
    def db_path(self) -> str:
        return self._state.db_path

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "providers.sandbox",
            "--host", "127.0.0.1", "--port", str(self._port), "--print-port", "--quiet",
            "--db", self.db_path, "--key", self.key, "--speed", str(self.speed),
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> Self:
        # The child imports providers.sandbox from this checkout, wherever the tests run from.
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.command(), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        self._port = self._read_port(self.process)
        self.base_url = f"http://127.0.0.1:{self._port}"
        return self

    def _read_port(self, process: subprocess.Popen[str]) -> int:
        # readline() could block forever if the child hangs: read it in a helper thread.
        lines: queue.Queue[str] = queue.Queue()
        stdout = process.stdout
        assert stdout is not None
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=self.startup_timeout)
        except queue.Empty:
            self.stop()
            raise SandboxControlError("the sandbox process did not start in time") from None
        if not line.strip().isdigit():
            self.stop()
            raise SandboxControlError(f"the sandbox process failed to start: {line!r}")
        return int(line)

    def stop(self) -> None:
        """SIGTERM, as a process manager would send: the server closes its state cleanly."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: a crash. SQLite's journal keeps every committed order."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None
