"""The price list's pages in the browser: with htmx a page link swaps the table alone and the
URL follows; with JavaScript off the same link loads the whole page. The search and the
category filter are kept in the page links."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.services import customer_create
from catalog import views
from catalog.models import Category, Service
from tests.browser.conftest import PHONE, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def catalog():
    customer_create(username="pager", password="pw-pager-12345")
    category = Category.objects.create(name="Spotify")
    Service.objects.bulk_create(
        [
            Service(
                name=f"Spotify Plays {i}",
                category=category,
                type="Default",
                min=100,
                max=100000,
                rate=Decimal("0.5"),
            )
            for i in range(views.SERVICES_PAGE_SIZE + 5)
        ]
    )


@pytest.mark.parametrize("javascript", [True, False], ids=["htmx", "no-js"])
def test_page_links_with_and_without_javascript(new_page, catalog, javascript):
    page = new_page(javascript=javascript)
    login(page, "pager", "pw-pager-12345")
    page.goto("/services/?q=plays")
    count = page.get_by_test_id("service-count")
    expect(count).to_contain_text(f"{views.SERVICES_PAGE_SIZE + 5} services")
    if javascript:
        page.evaluate("window.__same_document = true")
    page.get_by_role("link", name="Next").click()
    expect(page).to_have_url(re.compile(r"/services/\?q=plays&page=2$"))
    expect(count).to_contain_text(f"{views.SERVICES_PAGE_SIZE + 1}\u2013")
    expect(page.get_by_text("Spotify Plays 104", exact=True)).to_be_visible()
    expect(page.get_by_label("Search", exact=True)).to_have_value("plays")
    if javascript:  # the page was not reloaded: only the table was swapped
        assert page.evaluate("window.__same_document === true")


def test_paged_price_list_fits_a_phone(new_page, catalog, screenshot_dir):
    page = new_page(viewport=PHONE)
    login(page, "pager", "pw-pager-12345")
    page.goto("/services/?page=2")
    expect(page.get_by_role("link", name="Previous")).to_be_visible()
    page.screenshot(path=screenshot_dir / "services-page-2-phone.png", full_page=True)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
