"""The sandbox provider in a thread of the test process, over real HTTP on loopback, and a
small client for its control API (faults, request log, orders)."""

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from providers.sandbox.server import SandboxConfig, make_server

KEY = "sandbox-key"


class Sandbox:
    def __init__(self, *, speed: float = 60.0, timeout_seconds: float = 3.0) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="sandbox-")
        config = SandboxConfig(
            host="127.0.0.1",
            port=0,
            db_path=str(Path(self._dir.name) / "sandbox.sqlite3"),
            keys=(KEY,),
            speed=speed,
            quiet=True,
            reset_state=True,
            timeout_seconds=timeout_seconds,
        )
        # The sandbox's clock: real time plus what the tests skipped with advance().
        self.skipped = 0.0
        self.server = make_server(config, clock=lambda: time.time() + self.skipped)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.api_url = self.server.api_url
        self.base_url = self.server.base_url
        self.session = requests.Session()

    def close(self) -> None:
        self.server.shutdown()
        self.server.close()
        self.session.close()
        self._dir.cleanup()

    def control(self, method: str, route: str, **data: Any) -> Any:
        response = self.session.request(
            method,
            f"{self.base_url}/_sandbox/{route}",
            json=data or None,
            headers={"X-Sandbox-Key": KEY},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def advance(self, seconds: float) -> None:
        """Move the sandbox's clock on, as if `seconds` had passed: its orders and refills
        progress (their status is computed from the clock), with no test sleeping."""
        self.skipped += seconds

    def reset(self) -> None:
        self.control("POST", "reset")
        self.skipped = 0.0
        self.control("POST", "balance", balance="1000")

    def fault(
        self, mode: str, *, actions: tuple[str, ...] = ("add",), count: int | None = 1, **extra: Any
    ) -> None:
        self.control("POST", "faults", mode=mode, actions=list(actions), count=count, **extra)

    def config(self, **values: Any) -> None:
        self.control("POST", "config", **values)

    def orders(self) -> list[dict[str, Any]]:
        return self.control("GET", "orders")["orders"]

    def log(self, action: str | None = None) -> list[dict[str, Any]]:
        query = f"log?limit=10000{'&action=' + action if action else ''}"
        return self.control("GET", query)["requests"]

    def orders_created(self) -> int:
        """How many upstream orders `add` requests created (fault or not)."""
        return sum(1 for entry in self.log("add") if entry.get("order"))
