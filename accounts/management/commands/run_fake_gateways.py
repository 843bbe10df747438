"""Run the fake payment gateways (Stripe, Cryptomus, PayPal) for development and demos, signed
with the secrets the panel is configured with. Refuses to start with DEBUG off: it would let
anyone "pay" with a fake card.

    python manage.py run_fake_gateways [--host 127.0.0.1] [--port 8766] [--panel-url URL]
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.fake_gateways.server import DEFAULT_HOST, DEFAULT_PORT, FakeConfig, make_server


class Command(BaseCommand):
    help = "Run the fake payment gateways for development (DEBUG only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=DEFAULT_HOST)
        parser.add_argument("--port", type=int, default=DEFAULT_PORT)
        parser.add_argument(
            "--panel-url",
            default=None,
            help="Where webhooks go (default: PANEL_PUBLIC_URL).",
        )
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "The fake gateways let anyone pay with a fake card: they run with DEBUG on only."
            )
        panel_url = options["panel_url"] or settings.PANEL_PUBLIC_URL
        config = FakeConfig(
            host=options["host"],
            port=options["port"],
            panel_url=panel_url.rstrip("/"),
            stripe_secret_key=settings.STRIPE_SECRET_KEY or FakeConfig.stripe_secret_key,
            stripe_webhook_secret=settings.STRIPE_WEBHOOK_SECRET
            or FakeConfig.stripe_webhook_secret,
            cryptomus_merchant=settings.CRYPTOMUS_MERCHANT_ID or FakeConfig.cryptomus_merchant,
            cryptomus_payment_key=settings.CRYPTOMUS_PAYMENT_KEY
            or FakeConfig.cryptomus_payment_key,
            paypal_client_id=settings.PAYPAL_CLIENT_ID or FakeConfig.paypal_client_id,
            paypal_client_secret=settings.PAYPAL_CLIENT_SECRET or FakeConfig.paypal_client_secret,
            paypal_webhook_id=settings.PAYPAL_WEBHOOK_ID or FakeConfig.paypal_webhook_id,
            quiet=options["quiet"],
        )
        server = make_server(config)
        self.stdout.write(
            f"Fake gateways on {server.context.base_url}; webhooks go to {config.panel_url}",
        )
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.context.stop_event.set()
            server.server_close()
