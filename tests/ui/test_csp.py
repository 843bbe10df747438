"""Issue 11 #19: a Content-Security-Policy on every page (django-csp) that allows the panel's own
scripts, styles and images only, and templates that need nothing inline. The browser tests run
every page under it and fail on any violation (tests/browser/conftest.py)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from tests.panel.test_settings import FERNET, GOOD_SECRET, load_settings

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
APPS = ("panel", "accounts", "catalog", "orders", "providers")


def _policy(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


def _assert_strict(response) -> None:
    policy = _policy(response)
    for own in ("default-src", "script-src", "style-src", "font-src", "connect-src"):
        assert policy[own] == ["'self'"], (own, policy)
    assert policy["img-src"] == ["'self'", "data:"]  # Bootstrap's icons are data: SVGs
    assert policy["object-src"] == policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    header = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in header and "unsafe-eval" not in header


def test_every_page_sends_the_policy(client, alice, staff, default_service):
    for url in (reverse("login"), reverse("signup"), reverse("admin:login")):
        _assert_strict(client.get(url))
    client.force_login(alice)
    for url in (reverse("order_new"), reverse("services"), reverse("orders"), reverse("funds")):
        response = client.get(url)
        assert response.status_code == 200, url
        _assert_strict(response)
        # htmx would otherwise inject its indicator styles as an inline <style>.
        assert '"includeIndicatorStyles": false' in response.content.decode()
    staff_client = Client()
    staff_client.force_login(staff)
    for url in (reverse("admin:index"), reverse("admin:catalog_service_changelist")):
        _assert_strict(staff_client.get(url))


def test_policy_can_be_report_only_with_a_report_uri_and_a_bad_uri_refuses_to_start():
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.CONTENT_SECURITY_POLICY, s.CONTENT_SECURITY_POLICY_REPORT_ONLY)"
    )
    env = {"DEBUG": "true", "CSP_REPORT_ONLY": "true", "CSP_REPORT_URI": "/csp-report"}
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "panel.settings", **env}
    ok = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    enforced, report_only = ok.stdout.split(" ", 1)
    assert enforced == "{}" and "'report-uri': ['/csp-report']" in report_only
    assert "'script-src': [\"'self'\"]" in report_only
    bad = load_settings(
        {
            "DEBUG": "false",
            "SECRET_KEY": GOOD_SECRET,
            "ALLOWED_HOSTS": "x",
            "FIELD_ENCRYPTION_KEYS": FERNET,
            "CSP_REPORT_URI": "https://x.example/r; script-src *",
        }
    )
    assert bad.returncode != 0 and "CSP_REPORT_URI must be" in bad.stderr


INLINE = {
    "inline <script>": re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[\s>]"),
    "<style> element": re.compile(r"<style[\s>]"),
    "javascript: URL": re.compile(r"href\s*=\s*[\"']?\s*javascript:", re.I),
    # In a tag, so that Python code and comments naming them do not count:
    "style attribute": re.compile(r"<[a-zA-Z][^<>]*\sstyle\s*=", re.I),
    "event-handler attribute": re.compile(r"<[a-zA-Z][^<>]*\son[a-z]+\s*=", re.I),
}
IN_PYTHON = ("style attribute", "event-handler attribute")  # HTML built with format_html


def test_templates_and_admin_html_need_nothing_inline():
    # The policy refuses all of these; a template using one would break under it.
    files = list((ROOT / "templates").rglob("*.html"))
    files += [
        p
        for app in APPS
        for p in (ROOT / app).rglob("*.py")
        # The sandbox is a fake upstream: its hostile test descriptions are data, not our pages.
        if "migrations" not in p.parts and "sandbox" not in p.parts
    ]
    found = []
    for path in files:
        text = path.read_text()
        if path.suffix == ".html":
            text = re.sub(r"\{% comment %\}.*?\{% endcomment %\}", "", text, flags=re.S)
        for what, pattern in INLINE.items():
            if path.suffix == ".py" and what not in IN_PYTHON:
                continue
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not found, found
