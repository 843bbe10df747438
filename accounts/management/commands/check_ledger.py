from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.coupons import coupon_find_mismatches
from accounts.referrals import commission_find_mismatches
from accounts.selectors import ledger_find_mismatches


class Command(BaseCommand):
    help = (
        "Check that every customer's ledger sums to the balance and that each entry's "
        "balance_after chains from the one before, and that each referrer's available and "
        "paid-out commission match their commission, transfer and payout rows, and that each "
        "coupon's use counter matches its live uses. Exits 1 if anything is off."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        problems = ledger_find_mismatches()
        for problem in problems:
            self.stdout.write(f"{problem.username} (id {problem.user_id}): {problem.problem}")
        commission = commission_find_mismatches()
        for mismatch in commission:
            self.stdout.write(f"referrer id {mismatch.user_id}: commission {mismatch.problem}")
        coupons = coupon_find_mismatches()
        for coupon in coupons:
            self.stdout.write(f"coupon {coupon.code}: {coupon.problem}")
        found = len(problems) + len(commission) + len(coupons)
        if found:
            raise CommandError(f"{found} ledger mismatch(es) found.")
        self.stdout.write(self.style.SUCCESS("The ledger adds up for every customer."))
