"""A reseller's mix of /api/v2 calls for locust, at a fixed rate per user.

bench/load_test.py seeds the database, starts gunicorn and runs this file headless; see
docs/performance.md. By hand, against a panel of yours on this machine, with a JSON file
holding one of its customers' `key`, the id of a service to `add` and at least 100 of that
customer's `order_ids` (its `add`s are real orders: a running Celery worker would place them):

    PANEL_LOAD_SEED=seed.json .venv/bin/locust -f bench/locustfile.py \\
        --headless -u 20 -r 20 --run-time 30s --host http://127.0.0.1:8000

The mix (task weights out of 100), each call a POST of form fields `key` and `action` as the
protocol has it:

- 80 `status` with 100 comma-separated ids, drawn at random from the customer's real orders;
- 10 `add` of a service mapped to an upstream provider (its placement is enqueued on the broker);
- 5 `balance`;
- 5 `services` (the whole catalog; locust asks for gzip, as most clients do).

Each user waits so as to send PANEL_LOAD_USER_RATE requests per second (locust's
`constant_throughput`), so the offered rate is users x that rate, whatever the latency, as long as
a call is shorter than the interval. PANEL_LOAD_SEED names a JSON file with `key`,
`add_service` and `order_ids`, read when the first user starts (importing this file needs none).
"""

import json
import os
import random
from functools import cache

from locust import FastHttpUser, constant_throughput, task

# The mix as the docs state it (docs/performance.md); tests/bench/test_load_test.py checks that
# the @task weights below are these.
MIX = {"status": 80, "add": 10, "balance": 5, "services": 5}
STATUS_IDS = 100
USER_RATE = float(os.environ.get("PANEL_LOAD_USER_RATE", "1"))


@cache
def seed_data() -> dict:
    path = os.environ.get("PANEL_LOAD_SEED")
    if not path:
        raise RuntimeError("PANEL_LOAD_SEED must name the seed file bench/load_test.py writes")
    with open(path) as f:
        data = json.load(f)
    if len(data["order_ids"]) < STATUS_IDS:
        raise RuntimeError(f"the seed needs at least {STATUS_IDS} order ids")
    return data


class Reseller(FastHttpUser):
    """One reseller's script polling its orders, placing a few and checking its balance."""

    wait_time = constant_throughput(USER_RATE)
    # Production runs behind a TLS proxy that sets this; without it DEBUG-off settings redirect
    # every call to https (SECURE_SSL_REDIRECT), and the redirect would count as a failure.
    default_headers = {"X-Forwarded-Proto": "https"}

    def on_start(self) -> None:
        data = seed_data()
        self.key = data["key"]
        self.order_ids = [str(i) for i in data["order_ids"]]
        self.add_service = str(data["add_service"])

    def _call(self, name: str, form: dict, check) -> None:
        with self.client.post(
            "/api/v2", data={"key": self.key, **form}, name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            try:
                body = response.json()
            except ValueError:
                response.failure("not JSON")
                return
            if isinstance(body, dict) and "error" in body:
                response.failure(body["error"])
            elif not check(body):
                response.failure(f"unexpected answer: {str(body)[:100]}")

    @task(MIX["status"])
    def status(self) -> None:
        ids = random.sample(self.order_ids, STATUS_IDS)
        self._call(
            "status (100 ids)",
            {"action": "status", "orders": ",".join(ids)},
            lambda body: len(body) == STATUS_IDS,
        )

    @task(MIX["add"])
    def add(self) -> None:
        self._call(
            "add",
            {
                "action": "add",
                "service": self.add_service,
                "link": f"https://example.com/p/{random.randrange(10**9)}",
                "quantity": "100",
            },
            lambda body: "order" in body,
        )

    @task(MIX["balance"])
    def balance(self) -> None:
        self._call("balance", {"action": "balance"}, lambda body: "balance" in body)

    @task(MIX["services"])
    def services(self) -> None:
        self._call(
            "services",
            {"action": "services"},
            lambda body: isinstance(body, list) and len(body) > 0,
        )
