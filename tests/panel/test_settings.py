"""The settings refuse to start production without its secrets. Each case is a fresh
interpreter, because settings are read once per process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FERNET = "ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXktMDA="
GOOD_SECRET = "t3st-Only-6mQ9vX2pLr8ZsK4yNw7bHc1dFj5gTe0aUo3iRk9PqWm"


def load_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DEBUG",
            "SECRET_KEY",
            "ALLOWED_HOSTS",
            "FIELD_ENCRYPTION_KEYS",
            "DATABASE_URL",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        }
    }
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('ok')"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "panel.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALLOWED_HOSTS": "panel.example", "FIELD_ENCRYPTION_KEYS": FERNET}, "SECRET_KEY must"),
        (
            {"SECRET_KEY": "short", "ALLOWED_HOSTS": "x", "FIELD_ENCRYPTION_KEYS": FERNET},
            "SECRET_KEY",
        ),
        ({"SECRET_KEY": GOOD_SECRET, "FIELD_ENCRYPTION_KEYS": FERNET}, "ALLOWED_HOSTS must"),
        ({"SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": "x"}, "FIELD_ENCRYPTION_KEYS must"),
        (
            {
                "SECRET_KEY": GOOD_SECRET,
                "ALLOWED_HOSTS": "x",
                "FIELD_ENCRYPTION_KEYS": FERNET,
                "API_RATE_LIMIT_PER_KEY": "lots",
            },
            "API_RATE_LIMIT_PER_KEY: A rate limit looks like",
        ),
    ],
)
def test_production_settings_refuse_to_start_without_secrets(env, message):
    result = load_settings({"DEBUG": "false", **env})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_production_settings_pass_check_deploy(tmp_path):
    env = {
        "DEBUG": "false",
        "SECRET_KEY": GOOD_SECRET,
        "ALLOWED_HOSTS": "panel.example",
        "FIELD_ENCRYPTION_KEYS": FERNET,
        "PANEL_VAR_DIR": str(tmp_path),
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",  # console: accounts.E001
    }
    # The browser tests of the same session allow async-unsafe ORM calls; production never does.
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_embedded_default_uses_sqlite_and_a_file_broker(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL)",
        ],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "panel.settings",
            "DEBUG": "true",
            "PANEL_VAR_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://"], result.stderr


def test_embedded_mode_migrates_sqlite_from_scratch(tmp_path):
    """`make run` runs on SQLite: every migration must apply there too (PostgreSQL-only index
    options are skipped, not fatal)."""
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "true",
        "PANEL_VAR_DIR": str(tmp_path),
        "DATABASE_URL": "",  # empty, as in .env.example: the embedded default
    }
    for command in (["migrate", "--noinput"], ["makemigrations", "--check", "--dry-run"]):
        result = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "db.sqlite3").stat().st_size > 100_000
    # An order charged there: its steps (SQLite's CTEs cannot write) save it with its charge,
    # status change and daily summary, and refuse the next one the balance does not cover.
    result = subprocess.run(
        [sys.executable, "-c", EMBEDDED_ORDER],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "panel.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "refused: InsufficientFunds" in result.stdout, (
        result.stdout + result.stderr
    )


EMBEDDED_ORDER = """
import django
django.setup()
from decimal import Decimal
from django.core.management import call_command
from accounts.models import LedgerEntry, Wallet
from accounts.services import InsufficientFunds, customer_create
from orders.models import Order, OrderStatusChange
from orders.services import order_create
from tests.api.factories import ServiceFactory

user = customer_create(username="embedded", opening_balance=Decimal("0.10000"))
service = ServiceFactory()
data = {"link": "https://example.com/a", "quantity": "100"}
order = order_create(user=user, service=service, data=data, source="api")
entry = LedgerEntry.objects.get(order_ref=order.pk, kind="charge")
assert entry.memo == f"Order {order.pk}: {service.name}", entry.memo
assert Order.objects.get(pk=order.pk).charge == order.charge == -entry.amount
assert OrderStatusChange.objects.filter(order=order, source="create").count() == 1
assert Wallet.objects.get(user=user).balance == Decimal("0.10") - order.charge
try:
    order_create(user=user, service=service, data=data, source="api")
except InsufficientFunds:
    print("refused: InsufficientFunds")
assert Order.objects.filter(user=user).count() == 1
call_command("check_ledger")
call_command("order_summary", "--check")
"""


def test_smtp_settings_come_from_the_environment_and_refuse_tls_with_ssl():
    env = {"SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": "x", "FIELD_ENCRYPTION_KEYS": FERNET}
    smtp = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_PORT": "587",
        "EMAIL_USE_TLS": "true",
    }
    assert load_settings({"DEBUG": "false", **env, **smtp}).returncode == 0
    both = load_settings({"DEBUG": "false", **env, **smtp, "EMAIL_USE_SSL": "true"})
    assert both.returncode != 0 and "EMAIL_USE_TLS" in both.stderr


def _mail_settings(env: dict[str, str]) -> list[str]:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER, "
        "s.EMAIL_HOST_PASSWORD, s.EMAIL_USE_TLS, s.EMAIL_USE_SSL, sorted(s.ANYMAIL.items()), sep='|')"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "ANYMAIL_"))}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "panel.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split("|")


def test_email_url_sets_the_smtp_server_and_the_email_variables_override_it():
    url = "smtp+tls://mailer:s3cr%40t@smtp.example.com:587"
    assert _mail_settings({"EMAIL_URL": url}) == [
        "django.core.mail.backends.smtp.EmailBackend",
        "smtp.example.com",
        "587",
        "mailer",
        "s3cr@t",
        "True",
        "False",
        "[]",
    ]
    overridden = _mail_settings({"EMAIL_URL": url, "EMAIL_HOST": "relay.example.com"})
    assert overridden[1] == "relay.example.com" and overridden[2] == "587"


def test_an_email_service_is_chosen_by_email_backend_with_its_anymail_settings():
    got = _mail_settings(
        {
            "EMAIL_BACKEND": "anymail.backends.mailgun.EmailBackend",
            "ANYMAIL_MAILGUN_API_KEY": "key-123",
            "ANYMAIL_MAILGUN_SENDER_DOMAIN": "mg.example.com",
        }
    )
    assert got[0] == "anymail.backends.mailgun.EmailBackend"
    assert got[7] == (
        "[('MAILGUN_API_KEY', 'key-123'), ('MAILGUN_SENDER_DOMAIN', 'mg.example.com')]"
    )


def _database_options(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(sorted(s.DATABASES['default'].get('OPTIONS', {}).items()))",
        ],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "panel.settings",
            "DEBUG": "true",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/panel",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("value", "options"),
    [
        (None, "[('prepare_threshold', 5), ('server_side_binding', True)]"),
        ("true", "[('prepare_threshold', 5), ('server_side_binding', True)]"),
        ("false", "[]"),
    ],
)
def test_prepared_statements_are_on_unless_turned_off(value, options):
    done = _database_options({} if value is None else {"DATABASE_PREPARED_STATEMENTS": value})
    assert done.stdout.strip() == options, done.stderr
