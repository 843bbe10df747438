"""One status sweep now: cancels and refills sent, order/refill/cancel statuses polled."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from orders.services import orders_requeue, provider_sweep
from orders.services.sweeps import orders_make_all_due
from providers.models import Provider


class Command(BaseCommand):
    help = (
        "Run one sweep now for every enabled provider (or one with --provider): send queued "
        "cancels and refills, poll the statuses of due orders, refills and cancels, and print "
        "what changed. --all-due polls everything active now, due or not: orders, refills and "
        "cancels."
    )

    def add_arguments(self, parser):
        parser.add_argument("--provider", help="the provider's name")
        parser.add_argument(
            "--all-due",
            action="store_true",
            help="treat every active order, refill and cancel as due now",
        )
        parser.add_argument(
            "--requeue",
            action="store_true",
            help="also resend waiting orders and rescue stuck placements",
        )

    def handle(self, *args, provider=None, all_due=False, requeue=False, **options):
        providers = Provider.objects.filter(is_enabled=True)
        if provider:
            providers = Provider.objects.filter(name=provider)
            if not providers.exists():
                raise CommandError(f"No provider named {provider!r}.")
        now = timezone.now()
        if all_due:
            due = orders_make_all_due(providers=providers, now=now)
            self.stdout.write(
                f"made due: {due.orders} order(s), {due.refills} refill(s), {due.cancels} cancel(s)"
            )
        total = 0
        for item in providers:
            sweep = provider_sweep(provider=item, now=now)
            polled = sweep.orders
            for line in polled.changes:
                self.stdout.write(f"{item.name}: {line}")
            for what, count in sorted(sweep.requests.items()):
                self.stdout.write(f"{item.name}: {what}: {count}")
            self.stdout.write(
                f"{item.name}: {polled.polled} polled in {polled.upstream_calls} call(s), "
                f"{polled.changed} changed, {polled.unchanged} unchanged, "
                f"{polled.errors} error(s), {polled.to_review} sent to review"
            )
            total += polled.changed
        if requeue:
            result = orders_requeue(now=now)
            self.stdout.write(
                f"requeued {len(result.requeued)} order(s), {len(result.to_review)} stuck "
                "placement(s) sent to review"
            )
        self.stdout.write(self.style.SUCCESS(f"{total} order(s) changed."))
