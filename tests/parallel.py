"""What each pytest-xdist worker of a parallel run (`make test`: `pytest -n 2`) gets for itself.

pytest-django already gives each worker its own test database (test_<name>_gw0, _gw1, ...).
Everything else the tests share is chosen here, from the environment, before the worker reads the
settings: worker N uses Redis database REDIS_URL's + N (cache, rate limits, login throttling,
the Celery broker of the integration tests, which also empty it with FLUSHDB) and its own
PANEL_VAR_DIR. The live servers, the sandbox and the fake gateways already listen on free
ports (port 0). A subprocess a test starts (a Celery worker, gunicorn) inherits the result.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
REDIS_DATABASES = 16  # Redis's default `databases`: 0..15


def worker_number(worker_id: str) -> int:
    """`gw3` -> 3: pytest-xdist names its workers gw0, gw1, ..."""
    if not worker_id.startswith("gw") or not worker_id[2:].isdigit():
        raise ValueError(f"Not a pytest-xdist worker id: {worker_id!r}")
    return int(worker_id[2:])


def shift_redis_db(url: str, offset: int) -> str:
    """The same Redis server, database number + offset: redis://h:6379/9 -> /10 for 1."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"Not a redis:// URL: {url}")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"The path of a Redis URL is its database number: {url}")
    db = int(path or 0) + offset
    if db >= REDIS_DATABASES:
        raise ValueError(
            f"{url} plus {offset} is Redis database {db}, past the last one "
            f"({REDIS_DATABASES - 1}): choose a lower database in REDIS_URL or fewer workers."
        )
    return urlunsplit(parts._replace(path=f"/{db}"))


def worker_environment(worker_id: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables worker `worker_id` changes in its environment, from the controller's."""
    number = worker_number(worker_id)
    changes = {}
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        url = environ.get(name, "")
        if url.startswith(("redis://", "rediss://")):
            changes[name] = shift_redis_db(url, number)
    var_dir = Path(environ.get("PANEL_VAR_DIR") or ROOT / "var")
    changes["PANEL_VAR_DIR"] = str(var_dir / f"xdist-{worker_id}")
    return changes


def isolate_worker(gateway) -> None:
    """Run in the new worker's process, before pytest starts there: set its environment."""
    changes = worker_environment(gateway.id, os.environ)
    gateway.remote_exec(f"import os\nos.environ.update({changes!r})\n").waitclose()
