"""Recompute every service's average time now (the nightly schedule does the same):

python manage.py refresh_average_times
"""

from django.core.management.base import BaseCommand

from orders.services import service_average_times_refresh


class Command(BaseCommand):
    help = "Recompute Service.average_time (median of the last 100 completed orders) for all."

    def handle(self, *args: object, **options: object) -> None:
        count = service_average_times_refresh()
        self.stdout.write(f"{count} services refreshed.")
