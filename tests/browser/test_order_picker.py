"""The new-order page on a phone (390 px): the searchable service picker shows each service's
whole name and price, choosing one updates the side card, and the drip-feed fields sit behind
their box with a preview of the runs and the charge."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.services import customer_create
from catalog.models import Category, Service
from tests.browser.conftest import PHONE, htmx_idle, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_NAME = (
    "Spotify Premium Plays — worldwide listeners, real accounts, no drop, "
    "start in 0-2 hours, 50K per day [Refill 60D] [Max 10M]"
)


@pytest.fixture
def catalog():
    customer_create(username="picker", password="pw-picker-12345", opening_balance=Decimal(10))
    music = Category.objects.create(name="Spotify", sort_order=1)
    Service.objects.bulk_create(
        [
            Service(name=f"Spotify Followers {i}", category=music, min=10, max=5000, rate=1)
            for i in range(30)
        ]
    )
    plays = Service.objects.create(
        name=LONG_NAME,
        category=music,
        min=200,
        max=90000,
        rate=Decimal("2.63"),
        dripfeed=True,
        description="Plays from <b>real</b> premium accounts.",
    )
    return plays


def test_picker_on_a_phone_search_choose_and_drip_feed(new_page, catalog, screenshot_dir):
    plays = catalog
    page = new_page(viewport=PHONE)
    login(page, "picker", "pw-picker-12345")
    page.goto("/order/")
    page.wait_for_load_state()
    control = page.locator(".ts-wrapper .ts-control")
    expect(control).to_contain_text("Spotify Followers 0")  # the first service, preselected

    # Searchable: typing narrows the list to the one service, shown whole with its price.
    control.click()
    # Type only once Tom Select has opened its list (its focus handler runs after the click,
    # from a timer) and its search box has the focus: keys pressed before that are lost, a race
    # a loaded machine loses.
    expect(page.locator(".ts-dropdown")).to_be_visible()
    search = page.locator(".ts-wrapper .ts-control input")
    expect(search).to_be_focused()
    search.press_sequentially("premium plays")
    expect(search).to_have_value("premium plays")
    option = page.locator(".ts-dropdown .option")
    expect(option).to_have_count(1)
    expect(option).to_contain_text(LONG_NAME)
    expect(option).to_contain_text("$2.63")
    box = option.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert option.evaluate("(el) => el.scrollWidth <= el.clientWidth")  # wrapped, not cut
    # caret="initial": hiding the caret sets style="" on inputs, which htmx's history snapshot
    # would then copy into the page (a CSP report that is Playwright's, not the panel's).
    page.screenshot(path=screenshot_dir / "order-picker-phone.png", full_page=True, caret="initial")

    # Choosing it asks htmx for the page: the side card and the form follow.
    option.click()
    htmx_idle(page)
    expect(page.get_by_test_id("service-description")).to_contain_text("real premium")
    expect(page.get_by_test_id("service-limits")).to_have_text("200 / 90000")
    expect(page).to_have_url(
        re.compile(rf"/order/\?category={plays.category_id}&q=&service={plays.pk}$")
    )
    expect(page.locator(".ts-wrapper .ts-control")).to_contain_text(LONG_NAME)

    # Drip-feed: hidden behind its box; ticked, the preview gives runs, total and charge.
    runs = page.get_by_label("Runs (drip-feed)")
    expect(runs).to_be_hidden()
    page.get_by_label("Link").fill("https://open.spotify.com/track/x")
    page.get_by_label("Quantity").fill("200")
    page.get_by_label("Drip-feed: deliver in several runs").check()
    expect(runs).to_be_visible()
    runs.fill("3")
    page.get_by_label("Interval (minutes)").fill("30")
    expect(page.get_by_test_id("dripfeed-preview")).to_have_text(
        "200 \u00d7 3 runs = 600, every 30 min — $1.578"
    )
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0


def test_price_list_cards_and_favourites_on_a_phone(new_page, catalog, screenshot_dir):
    plays = catalog
    page = new_page(viewport=PHONE)
    login(page, "picker", "pw-picker-12345")
    page.goto("/services/")
    page.wait_for_load_state()
    card = page.get_by_test_id(f"service-{plays.pk}")
    expect(card).to_contain_text(LONG_NAME)
    expect(card.get_by_text("Rate per 1000")).to_be_visible()  # labelled values on a card
    expect(card.get_by_role("link", name=f"Order service {plays.pk}")).to_be_visible()
    star = card.get_by_role("button", name=f"Favourite: service {plays.pk}")
    star.click()  # htmx swaps the button alone
    expect(card.get_by_role("button", name=f"Favourite: service {plays.pk}")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.reload()
    page.get_by_label("Favourites only").check()
    expect(page.get_by_test_id("service-count")).to_contain_text("1 service in your favourites")
    page.screenshot(path=screenshot_dir / "services-cards-phone.png", full_page=True)
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
