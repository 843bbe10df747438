"""A tiny API v2 upstream on loopback whose catalog and balance a test sets at will (the sandbox's
catalog is generated and fixed; price changes and removals need one we control)."""

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

KEY = "test-upstream-key"


def item(service_id: int, rate: str = "1.00", **extra: Any) -> dict[str, Any]:
    """One `services` item as a typical provider sends it (numbers as strings)."""
    return {
        "service": service_id,
        "name": f"Followers {service_id}",
        "type": "Default",
        "category": "Instagram Followers",
        "rate": rate,
        "min": "10",
        "max": "10000",
        "refill": True,
        "cancel": True,
        "dripfeed": False,
        **extra,
    }


class _Handler(BaseHTTPRequestHandler):
    server: "CatalogServer"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self.server.requests.append(form.get("action", ""))
        if form.get("key") != KEY:
            answer: Any = {"error": "Invalid API key"}
        elif form.get("action") == "services":
            answer = self.server.catalog
        elif form.get("action") == "balance":
            answer = {"balance": str(self.server.balance), "currency": self.server.currency}
        else:
            answer = {"error": "Incorrect request"}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class CatalogServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, catalog: list[dict[str, Any]] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.catalog: list[dict[str, Any]] = catalog or []
        self.balance = Decimal("100.00")
        self.currency = "USD"
        self.requests: list[str] = []
        self.key = KEY

    def server_bind(self) -> None:
        # Skip HTTPServer's getfqdn() lookup: loopback needs no name.
        import socketserver

        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v2"

    def set_rate(self, service_id: int, rate: str) -> None:
        for entry in self.catalog:
            if entry["service"] == service_id:
                entry["rate"] = rate

    def remove(self, service_id: int) -> dict[str, Any]:
        entry = next(e for e in self.catalog if e["service"] == service_id)
        self.catalog.remove(entry)
        return entry

    def __enter__(self) -> "CatalogServer":
        threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
