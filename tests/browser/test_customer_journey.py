"""The whole customer journey in a real browser, against the sandbox provider over HTTP:
sign up, credited by an admin, order a Default and a Custom Comments service watching the
charge preview, follow delivery on the order list (refreshed by htmx, no reload), ask for a
refill, and find it all on the funds statement."""

import io
import re
import time
from decimal import Decimal

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from accounts.models import User
from orders.models import Order, Refill
from providers.sandbox.testing import SandboxServer
from tests.browser.conftest import catalog_with_sandbox, htmx_idle, staff_login
from tests.totp import give_second_factor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COMMENTS = [f"Great post number {n}!" for n in range(1, 11)]


def poll(provider) -> None:
    """What the periodic status sweep does, right now, for every active order."""
    call_command("poll_orders", provider=provider.name, all_due=True, stdout=io.StringIO())


def test_customer_journey(new_page, django_user_model):
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-123")
    boss_secret = give_second_factor(boss)
    with SandboxServer(speed=6) as sandbox:
        provider, default, custom = catalog_with_sandbox(sandbox.url, sandbox.key)
        page = new_page()

        # Sign up.
        page.goto("/")
        page.get_by_role("link", name="Create an account").click()
        page.get_by_label("Username").fill("dora")
        page.get_by_label("Email").fill("dora@example.com")
        page.locator("#id_password1").fill("dora-Secret-2026")
        page.locator("#id_password2").fill("dora-Secret-2026")
        page.get_by_label("I have read and accept the terms of service").check()
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("heading", name="Add funds")).to_be_visible()
        dora = User.objects.get(username="dora")

        # An admin credits her through the admin's balance page.
        admin = new_page()
        staff_login(
            admin,
            "boss",
            "pw-boss-123",
            boss_secret,
            url=f"/admin/accounts/user/{dora.pk}/balance/",
        )
        admin.get_by_label("Amount").fill("20")
        admin.get_by_label("Reason").fill("Bank transfer 2026-11-26")
        admin.get_by_role("button", name="Continue").click()  # then confirm what it shows
        admin.get_by_role("button", name="Confirm").click()
        expect(admin.get_by_text("the balance is $20.00")).to_be_visible()
        page.reload()
        expect(page.get_by_text("Your balance is $20.00")).to_be_visible()

        # A Default order: category, then service, then the charge preview as she types.
        page.get_by_role("link", name="New order").click()
        page.wait_for_load_state()  # htmx is set up once the page has loaded
        page.get_by_label("Category").select_option(label="Instagram Followers")
        expect(page.locator("#pick-service option")).to_have_count(2)  # placeholder + 1
        htmx_idle(page)
        # The searchable picker keeps the <select> (hidden): choosing there sends its change.
        page.locator("#pick-service").select_option(str(default.pk))
        htmx_idle(page)
        expect(page.get_by_test_id("service-description")).to_contain_text("Refill: 30 days")
        expect(page.get_by_test_id("service-description").locator("b")).to_have_text("Refill")
        page.get_by_label("Link").fill("https://instagram.com/dora")
        page.get_by_label("Quantity").fill("1000")
        expect(page.get_by_test_id("charge")).to_have_text("$1.35")
        page.get_by_label("Quantity").fill("2000")
        expect(page.get_by_test_id("charge")).to_have_text("$2.70")
        page.get_by_label("Quantity").fill("20")
        expect(page.get_by_test_id("quote-error")).to_contain_text("50")
        page.get_by_label("Quantity").fill("2000")
        expect(page.get_by_test_id("charge")).to_have_text("$2.70")
        page.get_by_role("button", name="Place order").click()
        expect(page.get_by_role("heading", name=re.compile(r"^Order \d+$"))).to_be_visible()
        first = Order.objects.get(user=dora, service=default)
        assert first.upstream_order_id  # placed at the sandbox when the order committed

        # A Custom Comments order, found by searching.
        page.get_by_role("link", name="New order").click()
        page.wait_for_load_state()  # htmx is set up once the page has loaded
        page.get_by_label("Search services").fill("comments")
        expect(page.locator("#pick-service option")).to_have_count(2)  # placeholder + 1
        htmx_idle(page)
        page.locator("#pick-service").select_option(str(custom.pk))
        htmx_idle(page)
        page.get_by_label("Link").fill("https://instagram.com/p/dora-post")
        page.locator("#id_comments").fill("\n".join(COMMENTS))
        expect(page.get_by_test_id("charge")).to_have_text("$0.12")
        page.get_by_role("button", name="Place order").click()
        expect(page.get_by_role("heading", name=re.compile(r"^Order \d+$"))).to_be_visible()
        second = Order.objects.get(user=dora, service=custom)

        # The order list refreshes itself while the sandbox delivers.
        page.get_by_role("link", name="Orders", exact=True).click()
        page.wait_for_load_state()
        page.evaluate("window.notReloaded = true")
        row = page.locator(f"#order-{first.pk}")
        seen: set[str] = set()
        statuses: set[str] = set()
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and statuses != {"Completed"}:
            poll(provider)
            page.wait_for_timeout(1200)
            rows = page.locator("#orders-list > li").all()
            statuses = {r.get_attribute("data-status") for r in rows}
            seen |= {
                r.get_by_test_id("delivered").inner_text()
                for r in rows
                if r.get_attribute("data-status") == "In progress"
            }
        assert statuses == {"Completed"}, statuses
        # Delivery was seen part-way, e.g. "840 of 2000", before the end.
        assert any(
            not text.startswith("0 of") and text.split(" of ")[0] != text.split(" of ")[1]
            for text in seen
        ), seen
        assert page.evaluate("window.notReloaded") is True  # htmx swapped the rows in place
        expect(row.get_by_test_id("delivered")).to_have_text("2000 of 2000")
        expect(page.locator(f"#order-{second.pk}").get_by_test_id("delivered")).to_have_text(
            "10 of 10"
        )

        # Refill: only the Default service offers one.
        expect(
            page.locator(f"#order-{second.pk}").get_by_role("button", name=re.compile("Refill"))
        ).to_have_count(0)
        row.get_by_role("button", name=re.compile("Refill")).click()
        expect(
            page.get_by_text(re.compile(rf"Refill \d+ of order {first.pk} is requested"))
        ).to_be_visible()
        refill = Refill.objects.get(order=first)
        row = page.locator(f"#order-{first.pk}")
        row.get_by_text("1 refill").click()
        expect(row.get_by_text(f"Refill {refill.pk}")).to_be_visible()
        expect(row.get_by_role("button", name=re.compile("Refill"))).to_have_count(0)

        # Everything is on the statement, with the running balance.
        page.get_by_role("link", name="Funds").click()
        statement = page.locator("#statement")
        expect(statement.locator("li")).to_have_count(3)
        expect(statement).to_contain_text("Bank transfer 2026-11-26")
        expect(statement).to_contain_text(f"Order {first.pk}")
        expect(statement).to_contain_text(f"Order {second.pk}")
        expect(statement.locator("li").first).to_contain_text("17.18")
        expect(page.get_by_test_id("balance")).to_have_text("$17.18")
        dora.wallet.refresh_from_db()
        assert dora.wallet.balance == Decimal("17.18000")
        assert len(sandbox.orders(link="https://instagram.com/dora")) == 1
