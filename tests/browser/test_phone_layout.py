"""What the screenshots showed (tests/browser/test_screenshots.py): on a phone the main menu is
one row that scrolls sideways, with the current page's link in view; the drip-feed and
subscription tables become one card per order, with nothing to scroll sideways; in dark mode
mass order's green and red result rows are dark, not pastel bands."""

import pytest

from tests.browser.conftest import DESKTOP, PHONE, login
from tests.browser.test_screenshots import make_data

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAV_ROWS = """() => {
  const tops = [...document.querySelectorAll('.panel-nav .nav-link')]
    .map(a => Math.round(a.getBoundingClientRect().top));
  return new Set(tops).size;
}"""
SIDEWAYS = """(selector) => {
  const table = document.querySelector(selector);
  const box = table.closest('.table-responsive');
  return box.scrollWidth - box.clientWidth;
}"""


def test_the_main_menu_is_one_row_on_a_phone_with_the_current_page_in_view(new_page):
    make_data()
    page = new_page(PHONE)
    login(page, "shots", "pw-shots-12345")
    page.goto("/account/security/")  # the menu's last link
    assert page.evaluate(NAV_ROWS) == 1
    current = page.locator(".panel-nav [aria-current=page]").bounding_box()
    assert current["x"] >= 0 and current["x"] + current["width"] <= PHONE["width"]
    page.set_viewport_size(DESKTOP)
    assert page.evaluate(NAV_ROWS) == 1  # the whole menu fits on a row of its own


@pytest.mark.parametrize(
    ("path", "table"),
    [("/orders/drip-feed/", "#drip-feed-list"), ("/orders/subscriptions/", "#subscription-list")],
)
def test_drip_feed_and_subscriptions_are_cards_on_a_phone(new_page, path, table):
    make_data()
    page = new_page(PHONE)
    login(page, "shots", "pw-shots-12345")
    page.goto(path)
    assert page.evaluate(SIDEWAYS, table) <= 0
    status = page.locator(f"{table} tbody .badge").first.bounding_box()
    assert status["x"] + status["width"] <= PHONE["width"]
    # Each value keeps its column's name beside it.
    label = page.evaluate(
        "(s) => getComputedStyle(document.querySelector(s + ' td[data-label]'), '::before')"
        ".content",
        table,
    )
    assert label == '"Order"'
    page.set_viewport_size(DESKTOP)
    assert page.locator(f"{table} thead").is_visible()  # a table again


def test_mass_order_results_are_dark_in_dark_mode(new_page):
    _, service = make_data()
    page = new_page(DESKTOP, color_scheme="dark")
    login(page, "shots", "pw-shots-12345")
    page.goto("/mass-order/")
    page.get_by_label("Orders").fill(
        f"{service.pk} | https://instagram.com/p/a | 100\n{service.pk} | https://x.com/b | 5"
    )
    page.get_by_role("button", name="Place orders").click()
    page.locator("#mass-results").wait_for()
    page.wait_for_load_state()  # the stylesheets too, not only the results
    for row in ("table-success", "table-danger"):
        colour = page.evaluate(
            "(c) => getComputedStyle(document.querySelector(`#mass-results .${c} td`))"
            ".backgroundColor",
            row,
        )
        red, green, blue = (int(part) for part in colour[4:-1].split(",")[:3])
        assert red + green + blue < 200, (row, colour)  # a dark tint, not a pastel band
