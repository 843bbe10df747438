"""The API v2 layers import one way: protocol <- handlers <- dispatcher."""

import ast
import subprocess
import sys
from pathlib import Path

from panel import api_v2

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "catalog", "orders", "providers")
HANDLERS = ("accounts/api.py", "catalog/api.py", "orders/api.py")


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_protocol_module_imports_no_app():
    code = (
        "import sys, panel.api_protocol; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {APPS!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
    assert not {m.split(".")[0] for m in _imported_modules(ROOT / "panel/api_protocol.py")} & {
        *APPS,
        "panel",
    }


def test_the_handlers_import_only_the_protocol_from_panel():
    for handler in HANDLERS:
        from_panel = {
            m for m in _imported_modules(ROOT / handler) if m == "panel" or m.startswith("panel.")
        }
        assert all(
            m == "panel.api_protocol" or m.startswith("panel.api_protocol.") for m in from_panel
        ), (handler, from_panel)


def test_the_dispatcher_table_is_a_plain_dict_of_the_handlers():
    from accounts import api as accounts_api
    from catalog import api as catalog_api
    from orders import api as orders_api

    assert type(api_v2.ACTIONS) is dict
    assert {
        "services": catalog_api.services,
        "add": orders_api.add,
        "status": orders_api.status,
        "refill": orders_api.refill,
        "refill_status": orders_api.refill_status,
        "cancel": orders_api.cancel,
        "balance": accounts_api.balance,
    } == api_v2.ACTIONS
