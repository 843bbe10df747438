from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.notifications import notification_delete_read_older_than


class Command(BaseCommand):
    help = (
        "Delete the notices read more than PANEL_NOTIFICATION_DAYS days ago (0 keeps them all); "
        "unread ones are kept. Run it from cron or a beat schedule."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        days = settings.PANEL_NOTIFICATION_DAYS
        if not days:
            self.stdout.write("PANEL_NOTIFICATION_DAYS is 0: every notice is kept.")
            return
        deleted = notification_delete_read_older_than(before=timezone.now() - timedelta(days=days))
        self.stdout.write(f"{deleted} notices read more than {days} days ago deleted.")
