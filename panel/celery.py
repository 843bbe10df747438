import os

from celery import Celery
from celery.signals import before_task_publish

from panel.queues import stamp_published_at

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")

app = Celery("panel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Every task message carries its publish time: the queue backlog check reads it (panel/queues.py).
before_task_publish.connect(stamp_published_at, weak=False)
