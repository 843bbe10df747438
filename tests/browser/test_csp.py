"""Issue 11 #19: the panel under its Content-Security-Policy in a real browser. The new_page
fixture fails a test on any violation (tests/browser/conftest.py); these tests check that it
notices one, and walk the admin pages, whose widgets are Django's own scripts."""

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.services import balance_credit, customer_create
from catalog.models import Category, Service
from tests.browser.conftest import staff_login
from tests.totp import give_second_factor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_injected_inline_script_or_style_is_refused_and_reported(new_page):
    page = new_page()
    page.goto(reverse("login"))
    page.evaluate(
        """() => {
          const s = document.createElement("script");
          s.textContent = "window.injected = true";
          document.body.append(s);
          document.body.setAttribute("style", "background: red");
        }"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.injected") is None
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(255, 0, 0)"
    found = "\n".join(new_page.csp_violations)
    assert "script-src" in found and "style-src" in found, found
    new_page.csp_violations.clear()  # provoked on purpose: the fixture must not fail this test


def _admin_data(django_user_model):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-12345")
    customer = customer_create(username="payer", password="pw-payer-12345")
    balance_credit(user=customer, amount=Decimal("50"), memo="Bank transfer 1")
    category = Category.objects.create(name="Instagram Followers")
    service = Service.objects.create(
        name="Followers", category=category, type="Default", min=10, max=1000,
        rate=Decimal("2"), description="<b>Real</b> accounts<br>Start: 0-1 hour",
    )  # fmt: skip
    return customer, service


def test_admin_pages_work_under_the_policy(new_page, django_user_model):
    customer, service = _admin_data(django_user_model)
    page = new_page()
    boss = django_user_model.objects.get(username="boss")
    staff_login(page, "boss", "pw-boss-12345", give_second_factor(boss))
    expect_cockpit = page.locator("#cockpit")
    assert expect_cockpit.count() == 1
    # The cockpit's styles come from static/panel/admin.css, not a <style> element.
    assert (
        page.evaluate("getComputedStyle(document.querySelector('.cockpit')).marginBottom") == "24px"
    )
    for url in (
        reverse("admin:accounts_user_change", args=[customer.pk]),  # the ledger table
        reverse("admin:accounts_user_balance", args=[customer.pk]),
        reverse("admin:accounts_ledgerentry_changelist"),
        reverse("admin:catalog_service_changelist"),
        reverse("admin:catalog_service_change", args=[service.pk]),
        reverse("admin:catalog_upstreamservice_changelist"),
        reverse("admin:pricing_bulk"),
        reverse("admin:orders_order_changelist"),
        reverse("admin:providers_provider_add"),
    ):
        page.goto(url)
        page.wait_for_load_state("load")
        assert page.locator("#content").count() == 1, url
    # Django's own admin scripts run: the changelist's select-all box and the action bar.
    page.goto(reverse("admin:catalog_service_changelist"))
    page.locator("#action-toggle").check()
    assert page.locator(".action-counter").inner_text().startswith("1 of 1")
