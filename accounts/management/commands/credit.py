from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import InsufficientFunds, InvalidAmount, balance_adjust
from catalog.pricing import parse_money


class Command(BaseCommand):
    help = "Credit (or, with a negative amount, debit) a customer's balance through the ledger."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("amount", help="e.g. 10 or -2.5 (use -- before a negative amount)")
        parser.add_argument("--reason", required=True, help="Written on the ledger entry.")

    def handle(self, *args: Any, username: str, amount: str, reason: str, **options: Any) -> None:
        try:
            value = parse_money(amount)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No customer named {username!r}.") from None
        try:
            entry = balance_adjust(user=user, amount=value, created_by=None, reason=reason)
        except (InsufficientFunds, InvalidAmount) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{entry.amount:+} for {user.username}; the balance is {entry.balance_after}."
        )
