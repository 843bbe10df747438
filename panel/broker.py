"""Celery's Redis broker transport: kombu's, with its redis client kept. kombu's channel builds a
new `redis.Redis` for every message it publishes (its table of about 170 reply callbacks filled
anew), which cost more CPU than the LPUSH it sends: a third of `order_submit.delay()`, the
enqueue of every new order (docs/api.md, Performance). The kept client holds no connection of
its own: the channel's pool does, and when kombu replaces the pool (after a fork, or once the
channel is closed) the next message builds a client for the new one. Set as
CELERY_BROKER_TRANSPORT when the broker is a redis:// URL (panel/settings.py).

`send(task, *ids)` is `task.delay(*ids)` for the hot enqueues (orders.services.enqueue): the
same message, sent in one LPUSH from the one kombu pushed for the task before (below)."""

import base64
import copy
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis as redis_client
from celery import signals
from celery.local import Proxy
from kombu.transport import redis

from panel.kept_redis import KeptConnection, kept_like
from panel.queues import PUBLISHED_AT_HEADER, stamp_published_at


class Channel(redis.Channel):
    _kept_client: tuple[Any, Any] | None = None  # (the pool, its client)

    def _create_client(self, asynchronous: bool = False) -> Any:
        # kombu's own private method, which its type information does not declare.
        if asynchronous:  # the worker's consuming client: kombu keeps it itself
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool
        kept = self._kept_client
        if kept is None or kept[0] is not pool:
            kept = self._kept_client = (pool, super()._create_client())  # type: ignore[misc]
        return kept[1]

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        super()._put(queue, message, **kwargs)
        # The message of send's own delay() (below), pushed on its own as it is (no key
        # prefix, no expiring queue): its task's template, with the key kombu pushed it to.
        name = (message.get("headers") or {}).get("task")
        alone = kwargs.get("_publish_batch") is None
        plain = alone and not self.global_keyprefix and not getattr(self, "_expires", None)
        if plain and name is not None and name == getattr(_capturing, "name", None):
            # kombu's own private helpers, as its _put uses them.
            priority = self._get_message_priority(message, reverse=False)
            key = self._q_for_pri(queue, priority)  # type: ignore[attr-defined]
            _remember(key, message, kept_like(self.pool))


class Transport(redis.Transport):
    Channel = Channel


# --- A task message in one command --------------------------------------------------------------
#
# Celery's task.delay() cost about 0.8-0.9 ms of CPU here, the enqueue of every new order a sixth
# of an API `add` (docs/api.md, "Sixth round"): Celery's options, routing and message building,
# kombu's producer, then redis-py's pooled client for the one LPUSH that sends it. `send(task,
# *ids)` sends its first message of a task in a process through delay(), and Channel._put keeps
# what kombu pushed (a template: only send's own, never a message another caller sent with
# options). The next ones are built from it, with their own id, arguments, publish time and
# thread's reply address, and pushed in one LPUSH on a connection kept for the purpose
# (panel.kept_redis): 0.20-0.33 ms where delay() took 0.77-1.16 in the same runs. When the
# message would differ from delay()'s (an eager app, a call from a worker's task, sent events on,
# a receiver of the publish signals other than the panel's stamp, an apply_async wrapped by an
# integration, arguments that are not ints) send() calls delay(); and when Redis does not take
# the LPUSH, delay() sends it with Celery's publish retries and failover, and the template is
# made again. The route is the task's by name (CELERY_TASK_ROUTES): a router that chose a queue
# by the arguments would be frozen at the first message.


@dataclass(frozen=True)
class _Template:
    key: str  # the Redis list the channel pushed it to
    envelope: dict[str, Any]  # kombu's envelope, its body decoded
    embed: dict[str, Any]  # the body's third part (callbacks, errbacks, chain, chord: all None)
    connection: KeptConnection  # made as the channel's pool makes its connections


_templates: dict[str, _Template] = {}
os.register_at_fork(after_in_child=_templates.clear)  # its origin header names the process
# The task whose message send's delay() is pushing on this thread, for Channel._put to keep.
_capturing = threading.local()
# Headers that would make a message not plain: a plain delay() leaves them empty.
_PLAIN_HEADERS: dict[str, Any] = {
    "eta": None,
    "expires": None,
    "group": None,
    "group_index": None,
    "shadow": None,
    "parent_id": None,
    "retries": 0,
    "kwargsrepr": "{}",
    "stamped_headers": None,
    "stamps": {},
}


def _remember(key: str, message: dict[str, Any], connection: KeptConnection) -> None:
    """Keep `message` (as Channel._put pushes it) as its task's template if it is a plain
    delay(): positional arguments only, no eta, expiry, group, parent or callbacks, priority 0."""
    headers, properties = message.get("headers") or {}, message.get("properties") or {}
    name = headers.get("task")
    if not isinstance(name, str) or headers.get("id") != headers.get("root_id"):
        return
    if any(headers.get(k, v) != v for k, v in _PLAIN_HEADERS.items()):
        return
    if properties.get("body_encoding") != "base64" or properties.get("priority", 0) != 0:
        return
    if "expiration" in properties or message.get("content-type") != "application/json":
        return
    try:
        args, kwargs, embed = json.loads(base64.b64decode(message["body"]))
    except (ValueError, TypeError, KeyError):
        return
    if kwargs or not isinstance(args, list) or not isinstance(embed, dict):
        return
    if any(value is not None for value in embed.values()):
        return
    envelope = copy.deepcopy({**message, "body": None})
    _templates[name] = _Template(key, envelope, embed, connection)


def _plain_publish(task: Any) -> bool:
    """Whether `task.delay()` would send the plain message now: not eager, not from a worker's
    task (whose messages carry its ids), no sent event, no publish signal receiver but the
    panel's stamp, apply_async not wrapped by an integration (functools.wraps leaves
    __wrapped__)."""
    app = task.app
    if app.conf.task_always_eager or app.current_worker_task is not None:
        return False
    if app.conf.task_send_sent_event or hasattr(task.apply_async, "__wrapped__"):
        return False
    stamp_only = all(r is stamp_published_at for _, r in signals.before_task_publish.receivers)
    return (
        stamp_only and not signals.after_task_publish.receivers and not signals.task_sent.receivers
    )


def _delay(task: Any, args: tuple[int, ...]) -> None:
    """task.delay(*args), its message kept as the task's template (Channel._put)."""
    _capturing.name = task.name
    try:
        task.delay(*args)
    finally:
        _capturing.name = None


def send(task: Any, *args: int) -> None:
    """`task.delay(*args)`: the same message, in one LPUSH once this process sent one for
    `task` through delay() (see above). Raises what delay() raises."""
    if isinstance(task, Proxy):  # a shared_task: every attribute read resolves it again
        task = task._get_current_object()
    template = _templates.get(task.name)
    if template is None or any(type(a) is not int for a in args) or not _plain_publish(task):
        _delay(task, args)
        return
    if task.typing:  # apply_async's check of the arguments against the task's signature
        task.__header__(*args)
    task_id = str(uuid.uuid4())
    headers = {
        **template.envelope["headers"],
        "id": task_id,
        "root_id": task_id,
        "argsrepr": repr(args),
        PUBLISHED_AT_HEADER: time.time(),
    }
    body = json.dumps([list(args), {}, template.embed]).encode()
    properties = {
        **template.envelope["properties"],
        "correlation_id": task_id,
        "reply_to": task.app.thread_oid,
        "delivery_tag": str(uuid.uuid4()),
    }
    message = {
        **template.envelope,
        "body": base64.b64encode(body).decode(),
        "headers": headers,
        "properties": properties,
    }
    try:
        template.connection.command("LPUSH", template.key, json.dumps(message).encode())
    except (redis_client.ConnectionError, redis_client.TimeoutError, OSError):
        # Redis did not take it on the kept connection, twice (a restart, a failover): delay()
        # retries as Celery's publish policy says and may reach another server; its message
        # becomes the template again. Sent more than once at worst (a connection that broke
        # after Redis took it), which the panel's tasks allow: they claim their work first.
        _templates.pop(task.name, None)
        _delay(task, args)
