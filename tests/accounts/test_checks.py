"""With DEBUG off, a mail backend that keeps mails on the machine (password-reset links in the
logs) stops every manage.py command, unless ALLOW_CONSOLE_EMAIL says it is wanted (issue 11)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = "django.core.mail.backends.console.EmailBackend"
SMTP = "django.core.mail.backends.smtp.EmailBackend"


@pytest.mark.parametrize(
    "backend",
    [
        CONSOLE,
        "django.core.mail.backends.filebased.EmailBackend",
        "django.core.mail.backends.locmem.EmailBackend",
    ],
)
def test_check_refuses_a_local_mail_backend_with_debug_off(backend):
    production = override_settings(DEBUG=False, EMAIL_BACKEND=backend, ALLOW_CONSOLE_EMAIL=False)
    with production, pytest.raises(SystemCheckError, match=r"accounts\.E001"):
        call_command("check", verbosity=0)


@pytest.mark.parametrize(
    ("debug", "backend", "allowed"),
    [(False, SMTP, False), (True, CONSOLE, False), (False, CONSOLE, True)],
)
def test_check_passes_with_smtp_with_debug_on_or_when_allowed(debug, backend, allowed):
    with override_settings(DEBUG=debug, EMAIL_BACKEND=backend, ALLOW_CONSOLE_EMAIL=allowed):
        call_command("check", verbosity=0)


def test_production_with_the_default_console_backend_refuses_to_start(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "false",
        "SECRET_KEY": "t3st-Only-6mQ9vX2pLr8ZsK4yNw7bHc1dFj5gTe0aUo3iRk9PqWm",
        "ALLOWED_HOSTS": "panel.example",
        "FIELD_ENCRYPTION_KEYS": "ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXktMDA=",
        "PANEL_VAR_DIR": str(tmp_path),
    }

    def check(**extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = check()
    assert refused.returncode != 0 and "accounts.E001" in refused.stderr
    assert check(ALLOW_CONSOLE_EMAIL="true").returncode == 0


def test_check_refuses_a_backend_that_cannot_be_imported():
    with (
        override_settings(EMAIL_BACKEND="anymail.backends.mailgunn.EmailBackend"),
        pytest.raises(SystemCheckError, match=r"accounts\.E002"),
    ):
        call_command("check", verbosity=0)


def test_check_refuses_an_email_service_without_its_key():
    mailgun = "anymail.backends.mailgun.EmailBackend"
    with (
        override_settings(EMAIL_BACKEND=mailgun, ANYMAIL={}),
        pytest.raises(SystemCheckError, match=r"accounts\.E003"),
    ):
        call_command("check", verbosity=0)
    with override_settings(EMAIL_BACKEND=mailgun, ANYMAIL={"MAILGUN_API_KEY": "key-1"}):
        call_command("check", verbosity=0)
