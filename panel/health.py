"""/healthz: is the database up, is the broker up, does a worker consume every queue.

For load balancers and docker compose. A database or broker that is down answers 503. A queue
whose oldest message waited longer than QUEUE_STALE_SECONDS (no worker consumes it) answers
200 with "status": "degraded" and the queue under "queues": the web server itself is fine, and
taking it out of rotation would not start a worker. Monitoring that wants a failing status code
for it asks /healthz?strict=1, which answers 503 when degraded.
"""

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from panel.celery import app as celery_app
from panel.queues import queue_backlog

logger = logging.getLogger(__name__)


def _database_up() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.exception("healthz: database check failed")
        return False


def _broker_up() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        logger.exception("healthz: broker check failed")
        return False


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_up(), "broker": _broker_up()}
    healthy = all(checks.values())
    queues = queue_backlog(app=celery_app) if checks["broker"] else []
    stale = [q.name for q in queues if q.stale]
    status = "error" if not healthy else "degraded" if stale else "ok"
    body: dict[str, object] = {"status": status}
    body.update({name: "up" if up else "down" for name, up in checks.items()})
    body["queues"] = {q.name: q.as_json() for q in queues}
    if stale:
        body["stale_queues"] = stale
        logger.warning("healthz: no worker consumes queue(s) %s", ", ".join(stale))
    failing = not healthy or (stale and request.GET.get("strict") == "1")
    return JsonResponse(body, status=503 if failing else 200)
