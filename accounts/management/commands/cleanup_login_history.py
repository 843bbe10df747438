from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.security import login_event_delete_older_than


class Command(BaseCommand):
    help = (
        "Delete login history older than PANEL_LOGIN_HISTORY_DAYS (0 keeps everything). "
        "Run it from cron or a beat schedule."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        days = settings.PANEL_LOGIN_HISTORY_DAYS
        if not days:
            self.stdout.write("PANEL_LOGIN_HISTORY_DAYS is 0: the whole history is kept.")
            return
        deleted = login_event_delete_older_than(before=timezone.now() - timedelta(days=days))
        self.stdout.write(f"{deleted} login history rows older than {days} days deleted.")
