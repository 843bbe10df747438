from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import LedgerEntry
from accounts.selectors import api_key_get_user

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_customer_with_balance_and_api_key_prints_the_key_last():
    output = run(
        "create_customer",
        "carol",
        "--email",
        "c@example.com",
        "--balance",
        "12.5",
        "--password",
        "s3cret-pass",
        "--api-key",
    )
    raw_key = output.strip().splitlines()[-1]
    carol = get_user_model().objects.get(username="carol")
    assert carol.balance == Decimal("12.50000")
    assert carol.check_password("s3cret-pass")
    assert api_key_get_user(raw_key=raw_key) == carol
    assert LedgerEntry.objects.get(user=carol).memo == "Opening balance"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--balance", "ten"], "not an amount"),
        (["--balance", "-1"], "cannot be negative"),
        (["--balance", "NaN"], "not a finite amount"),
        (["--balance", "1e23"], "too large"),
        (["--email", "not-an-email"], "email"),
    ],
)
def test_create_customer_rejects_bad_input_and_creates_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        run("create_customer", "dave", *args)
    assert not get_user_model().objects.filter(username="dave").exists()


def test_create_customer_refuses_a_taken_username(alice):
    with pytest.raises(CommandError, match="already exists"):
        run("create_customer", "alice")


def test_credit_and_debit_through_the_ledger(alice):
    assert "balance is 60.00000" in run("credit", "alice", "10", "--reason", "bank transfer")
    assert "balance is 57.50000" in run("credit", "alice", "--reason", "fee", "--", "-2.5")
    kinds = list(LedgerEntry.objects.filter(user=alice).order_by("id").values_list("kind", "memo"))
    assert kinds[1:] == [("deposit", "bank transfer"), ("adjustment", "fee")]
    run("check_ledger")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody", "5", "--reason", "x"], "No customer named 'nobody'"),
        (["alice", "abc", "--reason", "x"], "not an amount"),
        (["alice", "0", "--reason", "x"], "must be positive"),
        (["alice", "--reason", "x", "--", "-1000"], "Not enough funds"),
        (["alice", "5", "--reason", " "], "needs a reason"),
        (["alice", "1e23", "--reason", "x"], "too large"),
        (["alice", "--reason", "x", "--", "-1e30"], "too large"),
    ],
)
def test_credit_rejects_bad_input_and_writes_nothing(alice, args, message):
    with pytest.raises(CommandError, match=message):
        run("credit", *args)
    assert LedgerEntry.objects.filter(user=alice).count() == 1


def test_seed_demo_runs_twice_without_duplicates(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first = run("seed_demo")
    second = run("seed_demo")
    user_model = get_user_model()
    assert user_model.objects.filter(username="demo").count() == 1
    assert user_model.objects.get(username="admin").is_superuser
    assert LedgerEntry.objects.filter(user__username="demo").count() == 1
    key = (tmp_path / "demo_api_key.txt").read_text().strip()
    assert key in first and key in second
    assert "balance 100.00000" in first
    assert api_key_get_user(raw_key=key).username == "demo"
