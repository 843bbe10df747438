"""Checks on the shape of the code itself (docs/development.md): no long functions, and the
import contracts of pyproject.toml hold."""

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 60
# Held to other rules (tests), generated (migrations), or not ours; dot-dirs (.venv) too.
SKIPPED_DIRS = frozenset({"tests", "migrations", "var", "staticfiles", "node_modules", "build"})


def _python_files() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if any(part in SKIPPED_DIRS or part.startswith(".") for part in parts[:-1]):
            continue
        yield path


def _long_functions(source: str, name: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            # From the def line (decorators not counted) to the last line, docstring included.
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                yield f"{name}:{node.lineno} {node.name} ({length} lines)"


def test_the_walk_sees_the_apps_and_the_scripts() -> None:
    seen = {path.relative_to(ROOT).parts[0] for path in _python_files()}
    assert {
        "panel",
        "accounts",
        "catalog",
        "orders",
        "providers",
        "content",
        "support",
        "bench",
        "scripts",
    } <= seen
    assert not seen & {"tests", ".venv"}


def test_long_functions_are_found() -> None:
    body = "".join(f"        x = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    source = (
        f"class A:\n    def just_60():\n{body}\n"
        f"    async def over_60():\n{body}        x = 1\n\n"
        "def short():\n    return 1\n"
    )
    assert [entry.split()[1] for entry in _long_functions(source, "probe.py")] == ["over_60"]


def test_no_function_is_longer_than_60_lines() -> None:
    """STYLE §9: a function is usually 5-30 lines; one that needs section comments is two."""
    long = [
        entry
        for path in _python_files()
        for entry in _long_functions(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert not long, "Functions over 60 lines (split them):\n" + "\n".join(long)


def test_import_contracts_hold() -> None:
    """The contracts of [tool.importlinter] in pyproject.toml (well under a second)."""
    lint_imports = str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run(
        [lint_imports, "--no-cache"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


# What an app module may be besides the core modules the "core-layers" contract lists. A new
# module is neither until someone decides: add it to its app's layer (it holds data, writes or
# reads) or here (it parses a request or a command and calls services).
ENTRY_POINTS = frozenset(
    {
        "admin",
        "admin_views",
        "api",
        "apps",
        "checks",  # Django system checks, run by manage.py commands
        "forms",
        "management",
        "middleware",
        "migrations",
        "tasks",
        "templatetags",
        "urls",
        "views",
        "adapter",  # accounts.adapter: the hooks django-allauth calls (settings.ACCOUNT_ADAPTER)
        "sandbox",  # providers.sandbox: a standalone fake upstream, imports no app
        "fake_gateways",  # accounts.fake_gateways: standalone fake payment gateways
        "payment_views",  # accounts.payment_views: Add funds, a payment's page, webhooks
        "payment_admin",  # accounts.payment_admin: the payments admin, imported by admin.py
        "growth_admin",  # accounts.growth_admin: the tiers and coupons admin, imported by admin.py
        "notification_views",  # accounts.notification_views: the bell, settings, unsubscribe
        "referral_views",  # accounts.referral_views: /r/<code> and the customer's referral page
        "referral_admin",  # accounts.referral_admin: the referrals admin, imported by admin.py
    }
)


def _layered_modules() -> set[str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["id"] == "core-layers"]
    return {name.strip() for line in layers for name in line.replace("|", ":").split(":")}


def test_every_app_module_is_core_or_an_entry_point() -> None:
    """A module the contracts do not know could import anything: each app module is either in
    the core layers of pyproject.toml or a kind of entry point."""
    layered = _layered_modules()
    unknown = []
    for app in ("accounts", "catalog", "orders", "providers", "content", "support"):
        for path in sorted((ROOT / app).iterdir()):
            name = path.stem if path.suffix == ".py" else path.name
            if name.startswith("__") or not (path.suffix == ".py" or path.is_dir()):
                continue
            if name not in ENTRY_POINTS and f"{app}.{name}" not in layered:
                unknown.append(f"{app}.{name}")
    assert not unknown, f"Neither in a core layer nor an entry point: {unknown}"
