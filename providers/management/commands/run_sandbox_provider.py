"""``manage.py run_sandbox_provider``: run the sandbox provider (see docs/sandbox.md).

A thin wrapper: the server itself is plain standard library and needs no Django, so this only
maps the same flags as ``python -m providers.sandbox`` onto it and puts the state file under
the panel's var/ folder by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from providers.sandbox import cli


class Command(BaseCommand):
    help = "Run the sandbox SMM provider (API v2 at /api/v2) for demos and integration tests."

    # It touches neither the panel's database nor its models: skip the system checks so it
    # starts at once, even before migrations have run.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_arguments(parser)
        var_dir = Path(getattr(settings, "VAR_DIR", "var"))
        parser.set_defaults(db=str(var_dir / "sandbox.sqlite3"))

    def handle(self, *args: Any, **options: Any) -> None:
        cli.run(options)
