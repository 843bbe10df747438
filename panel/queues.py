"""The panel's Celery queues on the broker: how many messages wait in each, and for how long.

Celery's messages carry no enqueue time, so `stamp_published_at` (connected to Celery's
`before_task_publish` signal in panel/celery.py) writes the publish time into a header of every
task message. `queue_backlog` reads, for each queue in CELERY_TASK_QUEUES, the length and the
age of the oldest message: on Redis (kombu's lists: LPUSH to publish, BRPOP to consume, so the
oldest is the last element) and on kombu's file-system broker (one file per message). Any other
broker, or a broker that does not answer, gives "unknown". A queue whose oldest message waited
longer than QUEUE_STALE_SECONDS is stale: no worker consumes it (or too few do). /healthz and the
admin cockpit show it (docs/orders.md, "Queues and workers").
"""

import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from celery import Celery
from django.conf import settings
from kombu.transport import filesystem as kombu_filesystem
from kombu.transport import redis as kombu_redis

logger = logging.getLogger(__name__)

PUBLISHED_AT_HEADER = "panel_published_at"


def stamp_published_at(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """before_task_publish handler: the publish time (Unix seconds) in the message's headers.
    A retry is a new publish and gets a new stamp."""
    if headers is not None:
        headers[PUBLISHED_AT_HEADER] = time.time()


@dataclass(frozen=True)
class QueueBacklog:
    """One queue: `length` None when unknown; `oldest_seconds` None when empty, unknown, or
    when its oldest message has no stamp (published before the stamp existed)."""

    name: str
    length: int | None
    oldest_seconds: float | None
    stale_after: float

    @property
    def known(self) -> bool:
        return self.length is not None

    @property
    def stale(self) -> bool:
        return self.oldest_seconds is not None and self.oldest_seconds > self.stale_after

    def as_json(self) -> dict[str, Any]:
        oldest = None if self.oldest_seconds is None else round(self.oldest_seconds, 1)
        return {
            "length": self.length if self.known else "unknown",
            "oldest_seconds": oldest,
            "stale": self.stale,
        }


def queue_names(app: Celery) -> list[str]:
    """The declared queues (CELERY_TASK_QUEUES), else the default queue alone."""
    queues = app.conf.task_queues or ()
    return [q.name for q in queues] or [app.conf.task_default_queue]


def queue_backlog(*, app: Celery, now: float | None = None) -> list[QueueBacklog]:
    """Length and oldest message's age of each panel queue; "unknown" ones when the broker
    cannot be read (down, or a transport we do not read)."""
    now = time.time() if now is None else now
    stale_after = float(settings.QUEUE_STALE_SECONDS)
    names = queue_names(app)
    try:
        found = _read_broker(app, names, now)
    except Exception:
        logger.warning("queue backlog: the broker could not be read", exc_info=True)
        found = {}
    backlog = []
    for name in names:
        length, oldest = found.get(name, (None, None))
        backlog.append(QueueBacklog(name, length, oldest, stale_after))
    return backlog


def _read_broker(app: Celery, names: list[str], now: float) -> dict[str, tuple[int, float | None]]:
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        channel = conn.default_channel
        # kombu's channels, or a subclass of one (panel.broker's Redis channel).
        if isinstance(channel, kombu_redis.Channel):
            return {name: _redis_queue(channel, name, now) for name in names}
        if isinstance(channel, kombu_filesystem.Channel):
            return {name: _filesystem_queue(channel, name, now) for name in names}
        logger.info("queue backlog: the %s transport is not read", type(channel).__module__)
        return {}


def _age(payloads: Iterable[bytes | str | None], now: float) -> float | None:
    """The age of the oldest stamped message among `payloads` (kombu's JSON envelopes)."""
    stamps = []
    for raw in payloads:
        if not raw:
            continue
        try:
            stamp = json.loads(raw).get("headers", {}).get(PUBLISHED_AT_HEADER)
        except (ValueError, AttributeError):
            continue
        if isinstance(stamp, int | float):
            stamps.append(float(stamp))
    return max(0.0, now - min(stamps)) if stamps else None


def _redis_queue(channel: Any, name: str, now: float) -> tuple[int, float | None]:
    # One list per priority step; each is LPUSHed and BRPOPped, so its oldest is at index -1.
    keys = [channel._q_for_pri(name, pri) for pri in channel.priority_steps]
    client = channel.client
    with client.pipeline() as pipe:
        for key in dict.fromkeys(keys):
            pipe.llen(key)
            pipe.lindex(key, -1)
        replies = pipe.execute()
    lengths, oldest = replies[0::2], replies[1::2]
    return sum(int(n) for n in lengths), _age(oldest, now)


def _filesystem_queue(channel: Any, name: str, now: float) -> tuple[int, float | None]:
    # One file per message, named "<monotonic ms>_<uuid>.<queue>.msg": sorted, oldest first.
    folder = channel.data_folder_in
    files = sorted(f for f in os.listdir(folder) if f.partition(".")[2] == f"{name}.msg")
    if not files:
        return 0, None
    try:
        with open(os.path.join(folder, files[0]), "rb") as handle:
            oldest = _age([handle.read()], now)
    except OSError:  # consumed meanwhile
        oldest = None
    return len(files), oldest
