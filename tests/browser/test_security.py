"""Log out everywhere, in Chromium: one customer logged in from two browsers (two contexts,
separate cookies); the first ends the other from the Security page and the second is out."""

import re

import pytest
from playwright.sync_api import expect

from accounts.models import LoginEvent, UserSession
from tests.browser.conftest import PHONE, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_log_out_everywhere_else_from_the_security_page(new_page, alice, screenshot_dir):
    first = new_page()
    second = new_page(viewport=PHONE)
    login(first, "alice", "pw-alice-123")
    login(second, "alice", "pw-alice-123")
    assert UserSession.objects.filter(user=alice).count() == 2
    assert LoginEvent.objects.filter(user=alice, success=True, ip="127.0.0.1").count() == 2

    first.goto("/account/")
    first.get_by_role("link", name="Security").first.click()
    expect(first.get_by_role("heading", name="Logged-in devices")).to_be_visible()
    sessions = first.get_by_test_id("session")
    expect(sessions).to_have_count(2)
    expect(first.get_by_test_id("this-device")).to_have_count(1)
    expect(first.get_by_test_id("login-event")).to_have_count(2)
    first.screenshot(path=str(screenshot_dir / "security-desktop.png"), full_page=True)

    # The confirm dialog (static/panel/panel.js): dismissed, nothing happens; accepted, it ends.
    first.once("dialog", lambda dialog: dialog.dismiss())
    first.get_by_role("button", name="Log out everywhere else").click()
    expect(sessions).to_have_count(2)
    first.once("dialog", lambda dialog: dialog.accept())
    first.get_by_role("button", name="Log out everywhere else").click()
    expect(first.get_by_text("1 other session ended")).to_be_visible()
    expect(sessions).to_have_count(1)

    second.goto("/orders/")
    expect(second).to_have_url(re.compile(r"/login"))
    first.goto("/orders/")
    expect(first.get_by_role("heading", name="Orders").first).to_be_visible()
