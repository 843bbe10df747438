from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import ledger_find_mismatches


class Command(BaseCommand):
    help = (
        "Check that every customer's ledger sums to the balance and that each entry's "
        "balance_after chains from the one before. Exits 1 if anything is off."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        problems = ledger_find_mismatches()
        for problem in problems:
            self.stdout.write(f"{problem.username} (id {problem.user_id}): {problem.problem}")
        if problems:
            raise CommandError(f"{len(problems)} ledger mismatch(es) found.")
        self.stdout.write(self.style.SUCCESS("The ledger adds up for every customer."))
