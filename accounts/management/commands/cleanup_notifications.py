from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.notifications import notifications_prune


class Command(BaseCommand):
    help = (
        "Delete the notices read more than PANEL_NOTIFICATION_DAYS days ago (0 keeps them all); "
        "unread ones are kept. The beat schedule 'Notification retention' runs the same nightly."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = notifications_prune()
        if deleted is None:
            self.stdout.write("PANEL_NOTIFICATION_DAYS is 0: every notice is kept.")
            return
        days = settings.PANEL_NOTIFICATION_DAYS
        self.stdout.write(f"{deleted} notices read more than {days} days ago deleted.")
