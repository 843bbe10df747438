from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.security import login_history_prune


class Command(BaseCommand):
    help = (
        "Delete login history older than PANEL_LOGIN_HISTORY_DAYS (0 keeps everything). "
        "The beat schedule 'Login history retention' runs the same every night."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = login_history_prune()
        if deleted is None:
            self.stdout.write("PANEL_LOGIN_HISTORY_DAYS is 0: the whole history is kept.")
            return
        days = settings.PANEL_LOGIN_HISTORY_DAYS
        self.stdout.write(f"{deleted} login history rows older than {days} days deleted.")
