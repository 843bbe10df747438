from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders.services.summary import (
    daily_summary_mismatches,
    daily_summary_rebuild,
    wallet_order_count_mismatches,
    wallet_order_counts_rebuild,
)


class Command(BaseCommand):
    help = (
        "The cockpit's daily summary of orders (OrderDaySummary) and the customers' order "
        "counters (Wallet.order_count): --check compares them with a fresh scan of the orders "
        "and exits 1 on a difference; --rebuild rewrites both from the orders."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--check", action="store_true", help="Compare, write nothing.")
        action.add_argument(
            "--rebuild", action="store_true", help="Rewrite the summary and the counters."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["rebuild"]:
            rows = daily_summary_rebuild()
            wallets = wallet_order_counts_rebuild()
            self.stdout.write(
                self.style.SUCCESS(
                    f"Daily summary rebuilt: {rows} rows; order counters of {wallets} wallets set."
                )
            )
            return
        mismatches = daily_summary_mismatches()
        for mismatch in mismatches:
            self.stdout.write(f"summary {mismatch}")
        counters = wallet_order_count_mismatches()
        for user_id, stored, counted in counters:
            self.stdout.write(f"user id {user_id}: order_count {stored}, orders {counted}")
        if mismatches or counters:
            raise CommandError(
                f"{len(mismatches)} summary row(s) and {len(counters)} order counter(s) differ "
                "from the orders (--rebuild rewrites both from the orders)."
            )
        self.stdout.write(self.style.SUCCESS("The daily summary and the order counters match."))
