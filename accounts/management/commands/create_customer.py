from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import InvalidAmount, api_key_issue, customer_create
from catalog.pricing import parse_money


class Command(BaseCommand):
    help = (
        "Create a customer, credit the opening balance through the ledger and, with --api-key, "
        "print a new API key on the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password", default=None, help="Without it the customer cannot log in."
        )
        parser.add_argument("--balance", default="0", help="Opening balance, e.g. 25.50")
        parser.add_argument("--api-key", action="store_true", help="Issue an API key and print it.")

    def handle(
        self,
        *args: Any,
        username: str,
        email: str,
        password: str | None,
        balance: str,
        api_key: bool,
        **options: Any,
    ) -> None:
        try:
            opening = parse_money(balance)
        except ValueError as exc:
            raise CommandError(f"--balance: {exc}") from None
        if opening < 0:
            raise CommandError("--balance cannot be negative.")
        try:
            user = customer_create(
                username=username, email=email, password=password, opening_balance=opening
            )
        except ValidationError as exc:
            messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(messages) from None
        except InvalidAmount as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Created customer {user.username} (id {user.pk}), balance {user.balance}."
        )
        if api_key:
            self.stdout.write(api_key_issue(user=user).raw)
