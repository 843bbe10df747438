"""The sandbox's dialects: answering like a seed provider that lacks some calls (seed 000)."""

from typing import Any

import pytest
import requests

from providers.sandbox.cli import _rules
from providers.sandbox.dialects import DialectError, is_refused, parse_rules
from providers.sandbox.server import SandboxConfig
from providers.sandbox.testing import SandboxServer

FOLLOWERS = 1  # Default, refill + cancel
LINK = "https://instagram.com/p/dialect"


@pytest.fixture
def sandbox():
    with SandboxServer(speed=0) as server:
        yield server


def post(sandbox: SandboxServer, **fields: Any) -> Any:
    response = requests.post(sandbox.url, data={"key": sandbox.key, **fields}, timeout=5)
    assert response.status_code == 200
    return response.json()


def _completed_order(sandbox: SandboxServer) -> int:
    return post(sandbox, action="add", service=FOLLOWERS, link=LINK, quantity=100)["order"]


def test_helposmm_refuses_multi_refill_refill_status_and_cancel_like_seed_000(sandbox):
    order = _completed_order(sandbox)
    assert sandbox.set_dialect("helposmm")["dialect"] == "helposmm"
    refused = {"error": "Incorrect request"}
    assert post(sandbox, action="refill", orders=str(order)) == refused
    refill = post(sandbox, action="refill", order=order)  # the documented single form
    assert set(refill) == {"refill"}
    assert post(sandbox, action="refill_status", refills=refill["refill"]) == refused
    assert set(post(sandbox, action="refill_status", refill=refill["refill"])) == {"status"}
    assert post(sandbox, action="cancel", orders=str(order)) == refused
    assert post(sandbox, action="cancel", order=order) == refused  # no cancel at all
    # Multi status is documented by helposmm: it still works.
    assert str(order) in post(sandbox, action="status", orders=f"{order},1")
    [log] = sandbox.log(action="cancel")[-1:]
    assert log["outcome"] == "error: Incorrect request"


def test_helposmm_catalog_has_no_cancel_or_dripfeed_keys(sandbox):
    assert {"cancel", "dripfeed"} <= set(post(sandbox, action="services")[0])
    sandbox.set_dialect("helposmm")
    item = post(sandbox, action="services")[0]
    assert "cancel" not in item and "dripfeed" not in item
    assert {"service", "name", "rate", "min", "max", "desc", "refill"} <= set(item)


def test_extra_rules_refuse_multi_status_only_and_reset_restores_the_full_dialect(sandbox):
    order = _completed_order(sandbox)
    settings = sandbox.set_dialect("full", refuse=["status:orders"])
    assert settings["refuse"] == ["status:orders"]
    assert post(sandbox, action="status", orders=str(order)) == {"error": "Incorrect request"}
    assert post(sandbox, action="status", order=order)["status"] == "Completed"
    sandbox.reset()
    order = _completed_order(sandbox)
    assert str(order) in post(sandbox, action="status", orders=str(order))


def test_dialect_and_rules_are_checked(sandbox):
    with pytest.raises(Exception, match="dialect must be one of"):
        sandbox.set_dialect("nope")
    with pytest.raises(Exception, match="malformed"):
        sandbox.set_dialect("full", refuse=["status:orders:x"])
    with pytest.raises(DialectError):
        SandboxConfig(dialect="nope")
    assert parse_rules("refill:orders, cancel") == {"refill:orders", "cancel"}
    assert _rules("status:orders") == {"status:orders"}
    assert is_refused({"refill:orders"}, {"action": "refill", "orders": "1"})
    assert not is_refused({"refill:orders"}, {"action": "refill", "order": "1"})
    assert not is_refused({"refill:orders"}, {"action": "refill", "orders": " "})


def test_dialect_given_at_start_applies():
    with SandboxServer(speed=0, dialect="helposmm", refuse=("status:orders",)) as sandbox:
        assert post(sandbox, action="status", orders="1") == {"error": "Incorrect request"}
        assert post(sandbox, action="refill", orders="1") == {"error": "Incorrect request"}


def test_cli_maps_dialect_and_refuse_flags():
    import argparse

    from providers.sandbox.cli import add_arguments, config_from_options

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = vars(parser.parse_args(["--dialect", "helposmm", "--refuse", "status:orders",
                                      "--refuse", "refill_status"]))  # fmt: skip
    config = config_from_options(options)
    assert config.dialect == "helposmm"
    assert config.refuse == ("refill_status", "status:orders")
    with pytest.raises(SystemExit):
        parser.parse_args(["--dialect", "nope"])
