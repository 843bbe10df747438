"""The fake gateways in a background thread of the test process, on a free loopback port::

with FakeGateways(panel_url=live_server.url) as fake:
    settings.STRIPE_API_BASE = fake.url("stripe")
    ...
    fake.wait_for_deliveries("stripe", 1)
"""

from __future__ import annotations

import dataclasses
import threading
import time
from types import TracebackType
from typing import Any, Self

from accounts.fake_gateways.server import Delivery, FakeConfig, FakeGatewaysServer, make_server


class FakeGateways:
    def __init__(self, **options: Any) -> None:
        """`options` are FakeConfig fields (panel_url, secrets, webhook_attempts...)."""
        self.config = FakeConfig(host="127.0.0.1", port=0, quiet=True, **options)
        self.server: FakeGatewaysServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self.server = make_server(self.config)
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.server is None:
            return
        self.server.context.stop_event.set()
        self.server.shutdown()
        self.server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self.server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return self.server.context.base_url

    def url(self, gateway: str) -> str:
        """The API base of one fake gateway, e.g. for STRIPE_API_BASE."""
        return f"{self.base_url}/{gateway}"

    def reconfigure(self, **changes: Any) -> None:
        """Change the config while running (e.g. panel_url once the live server is up)."""
        assert self.server is not None
        self.server.context.config = dataclasses.replace(self.server.context.config, **changes)

    def deliveries(self, gateway: str | None = None) -> list[Delivery]:
        assert self.server is not None
        with self.server.context.lock:
            return [d for d in self.server.context.deliveries if gateway in (None, d.gateway)]

    def wait_for_deliveries(
        self, gateway: str, count: int, *, timeout: float = 10
    ) -> list[Delivery]:
        """Wait until `count` webhooks of `gateway` have had an answer (their last attempt
        recorded), and return them."""
        deadline = time.monotonic() + timeout
        while True:
            done = [d for d in self.deliveries(gateway) if d.attempts]
            if len(done) >= count or time.monotonic() > deadline:
                return done
            time.sleep(0.02)

    def reset(self) -> None:
        assert self.server is not None
        self.server.context.reset()
