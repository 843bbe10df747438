"""Command-line options of the sandbox provider.

Shared by ``python -m providers.sandbox`` and ``manage.py run_sandbox_provider`` so both accept
exactly the same flags (Django's CommandParser is an argparse parser).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

from providers.sandbox import dialects
from providers.sandbox import faults as fl
from providers.sandbox.server import (
    DEFAULT_DB,
    DEFAULT_HOST,
    DEFAULT_KEY,
    DEFAULT_PORT,
    DEFAULT_SPEED,
    DEFAULT_TIMEOUT_SECONDS,
    SandboxConfig,
    SandboxHTTPServer,
    make_server,
)


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError("the balance must be zero or more")
    return value


def _fault(text: str) -> dict[str, Any]:
    try:
        spec = fl.parse_cli_fault(text)
        fl.build_fault(spec, 0)  # check it now, not when the first request comes in
    except ValueError as exc:  # FaultSpecError and JSONDecodeError are ValueErrors
        raise argparse.ArgumentTypeError(str(exc)) from None
    return spec


def _rules(text: str) -> frozenset[str]:
    try:
        return dialects.parse_rules(text)
    except dialects.DialectError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    add("--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one")
    add("--db", default=DEFAULT_DB, help=f"SQLite state file (default {DEFAULT_DB})")
    add(
        "--key",
        action="append",
        dest="keys",
        metavar="KEY",
        help=f"accepted API key; repeat for several (default {DEFAULT_KEY})",
    )
    add("--control-key", default=None, help="key for /_sandbox/ (default: any API key)")
    add(
        "--speed",
        type=float,
        default=DEFAULT_SPEED,
        help=f"seconds from Pending to the final status (default {DEFAULT_SPEED:g})",
    )
    add("--balance", type=_decimal, default=None, help="set the balance (new state: 1000)")
    add("--currency", default="USD", help="currency of balance and status answers")
    add("--services", type=int, default=0, metavar="N", help="pad the catalog to N services")
    add(
        "--partial-percent",
        type=int,
        default=0,
        metavar="P",
        help="about P%% of links (chosen by hash) end Partial",
    )
    add(
        "--timeout-seconds",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="how long the 'timeout' fault sleeps by default",
    )
    add(
        "--fault",
        action="append",
        dest="faults",
        type=_fault,
        metavar="SPEC",
        help="a fault from the start: JSON, or mode[:actions[:count[:message]]]; repeatable",
    )
    add("--reset", action="store_true", help="wipe orders, log and balance at start")
    add("--print-port", action="store_true", help="print the bound port alone on stdout")
    add("--quiet", action="store_true", help="no access log on stderr")
    _add_dialect_arguments(parser)


def _add_dialect_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--dialect",
        choices=sorted(dialects.DIALECTS),
        default=dialects.FULL,
        help="answer like one seed provider: helposmm refuses multi refill/refill_status and "
        "cancel with 'Incorrect request' (default full: every call)",
    )
    add(
        "--refuse",
        action="append",
        dest="refuse",
        type=_rules,
        metavar="RULES",
        help="refuse more calls as unknown: action or action:field, comma-separated "
        "(e.g. status:orders refuses multi status); repeatable",
    )


def config_from_options(options: Mapping[str, Any]) -> SandboxConfig:
    return SandboxConfig(
        host=options["host"],
        port=options["port"],
        db_path=str(options["db"]),
        keys=tuple(options.get("keys") or (DEFAULT_KEY,)),
        control_key=options.get("control_key"),
        speed=options["speed"],
        balance=options.get("balance"),
        currency=options["currency"],
        services=options["services"],
        partial_percent=options["partial_percent"],
        timeout_seconds=options["timeout_seconds"],
        faults=tuple(options.get("faults") or ()),
        quiet=options.get("quiet", False),
        reset_state=options.get("reset", False),
        dialect=options.get("dialect") or dialects.FULL,
        refuse=tuple(rule for rules in options.get("refuse") or () for rule in rules),
    )


def _announce(server: SandboxHTTPServer, config: SandboxConfig, print_port: bool) -> None:
    if print_port:
        # Alone on the first line, so a parent process can read it before anything else.
        print(server.port, flush=True)
    print(
        f"Sandbox provider on {server.api_url} (key {config.keys[0]!r}, "
        f"{len(server.app.catalog)} services, speed {config.speed:g}s, state {config.db_path})",
        file=sys.stderr,
        flush=True,
    )


def _exit_on_sigterm(signum: int, frame: Any) -> NoReturn:
    raise SystemExit(0)


def run(options: Mapping[str, Any]) -> None:
    """Serve until Ctrl-C or SIGTERM; both close the state file cleanly."""
    config = config_from_options(options)
    server = make_server(config)
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _announce(server, config, bool(options.get("print_port")))
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m providers.sandbox",
        description="A sandbox SMM provider speaking API v2, for demos and tests.",
    )
    add_arguments(parser)
    run(vars(parser.parse_args(argv)))
    return 0
