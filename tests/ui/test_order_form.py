"""The new-order page at the market's standard (issue 17): it opens on the last used (or the
first) service, shows the average time, a drip-feed behind its box with a preview, how much is
missing when the balance is short, and a line count said once for Custom Comments."""

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from catalog.models import Category, Service
from orders.models import Order
from orders.services import service_average_times_refresh
from tests.ui.test_average_times import completed

pytestmark = pytest.mark.django_db


def selected(response) -> Service | None:
    return response.context.get("service")


def test_the_page_opens_on_the_first_service_without_orders(alice_client, default_service):
    other = Category.objects.create(name="YouTube", sort_order=2)
    Service.objects.create(name="YouTube Views", category=other, min=1, max=10, rate=1)
    response = alice_client.get(reverse("order_new"))
    assert selected(response) == default_service
    assert response.context["form"] is not None  # the order form is there at once
    assert response.context["category_id"] == str(default_service.category_id)
    assert b'selected data-rate="$2.00">' in response.content


def test_the_page_opens_on_the_last_used_service(alice_client, alice, bob, default_service, place):
    other = Category.objects.create(name="YouTube", sort_order=2)
    views = Service.objects.create(name="YouTube Views", category=other, min=1, max=10, rate=1)
    place(views, quantity="5")
    completed(bob, default_service, [5])  # another customer's later order does not count
    response = alice_client.get(reverse("order_new"))
    assert selected(response) == views
    assert response.context["category_id"] == str(other.pk)
    # No longer on sale: the first service instead.
    Service.objects.filter(pk=views.pk).update(is_enabled=False)
    assert selected(alice_client.get(reverse("order_new"))) == default_service


def test_a_category_picked_opens_its_first_service(alice_client, default_service):
    other = Category.objects.create(name="YouTube", sort_order=2)
    views = Service.objects.create(name="YouTube Views", category=other, min=1, max=10, rate=1)
    # The picker sends the service still shown with the new category: the category wins.
    response = alice_client.get(
        reverse("order_new"), {"category": other.pk, "service": default_service.pk}
    )
    assert selected(response) == views
    # The service asked for is kept when it is in the category.
    response = alice_client.get(reverse("order_new"), {"category": other.pk, "service": views.pk})
    assert selected(response) == views
    # "Choose a service…" is a choice too: no service, no form.
    response = alice_client.get(reverse("order_new"), {"service": ""})
    assert selected(response) is None and response.context["form"] is None


def test_the_side_card_shows_limits_refill_cancel_and_average_time(
    alice_client, alice, default_service
):
    completed(alice, default_service, [55] * 9)
    service_average_times_refresh()
    body = alice_client.get(reverse("order_new")).content.decode()
    assert re.search(r'data-testid="average-time"><span[^>]*>—</span>', body)
    assert 'data-testid="service-limits">10 / 10000<' in body
    assert "Yes, 30 days" in body and "Real-looking <b>profiles</b>" in body
    completed(alice, default_service, [65])
    service_average_times_refresh()
    body = alice_client.get(reverse("order_new")).content.decode()
    assert 'data-testid="average-time">55 min<' in body  # the median of 9 x 55 and 65


def test_short_funds_say_how_much_more_with_an_add_funds_link(alice_client, alice, default_service):
    # Balance 50; 30,000 at 2.00 per 1000 would be 60: but max is 10,000, so raise the rate.
    Service.objects.filter(pk=default_service.pk).update(rate=Decimal("5.32"))
    data = {
        "service": default_service.pk,
        "token": "t-short",
        "action": "order",
        "link": "https://instagram.com/p/x",
        "quantity": "10000",
    }
    response = alice_client.post(reverse("order_new"), data)
    body = response.content.decode()
    assert response.status_code == 400 and not Order.objects.exists()
    assert "You need $3.20 more." in body  # 53.20 - 50.00
    assert f'href="{reverse("funds_add")}?amount=3.20"' in body
    # The live preview says the same.
    quote = alice_client.post(reverse("order_quote"), {**data, "action": "quote"})
    assert "You need $3.20 more." in quote.content.decode()
    # Enough funds: no such line.
    data["quantity"] = "9000"
    quote = alice_client.post(reverse("order_quote"), {**data, "action": "quote"})
    assert "more." not in quote.content.decode()


def test_add_funds_takes_the_amount_from_the_link(alice_client, settings):
    settings.PANEL_REQUIRE_VERIFIED_EMAIL_FOR_DEPOSIT = False
    response = alice_client.get(reverse("funds_add"), {"amount": "3.20"})
    assert response.context["form"]["amount"].value() == "3.20"
    for junk in ("-1", "3.205", "1e9", "<b>", ""):
        response = alice_client.get(reverse("funds_add"), {"amount": junk})
        assert response.context["form"]["amount"].value() in ("", None), junk


def test_the_rounded_up_amount_covers_a_shortfall_in_fractions_of_a_cent(
    alice_client, alice, default_service
):
    from orders.views import shortfall

    assert shortfall(Decimal("50"), Decimal("53.20001")) == {
        "amount": Decimal("3.20001"),
        "add": Decimal("3.21"),
    }
    assert shortfall(Decimal("50"), Decimal("50")) is None


def test_custom_comments_say_how_many_lines_once(alice_client, comments_service):
    body = alice_client.get(reverse("order_new"), {"service": comments_service.pk}).content
    text = body.decode()
    assert text.count("1 to 100 lines") == 1
    assert text.count("One comment per line") == 1
    assert "number of lines you write" not in text


def drip_data(service, **fields):
    return {
        "service": service.pk,
        "token": "t-drip",
        "link": "https://instagram.com/p/x",
        "quantity": "200",
        **fields,
    }


def test_drip_feed_is_behind_its_box_with_a_preview(alice_client, alice, default_service):
    Service.objects.filter(pk=default_service.pk).update(dripfeed=True, rate=Decimal("2.63"))
    page = alice_client.get(reverse("order_new"), {"service": default_service.pk})
    assert 'class="form-check-input dripfeed-toggle"' in page.content.decode()
    # Ticked: the preview of the runs and the server's charge (600 x 2.63 / 1000 = 1.578).
    quote = alice_client.post(
        reverse("order_quote"), drip_data(default_service, dripfeed="on", runs="3", interval="30")
    )
    assert "200 \u00d7 3 runs = 600, every 30 min — $1.578" in quote.content.decode()
    # Unticked: runs typed before are not sent; an ordinary order of 200.
    quote = alice_client.post(
        reverse("order_quote"), drip_data(default_service, runs="3", interval="30")
    )
    assert "runs =" not in quote.content.decode() and "(200 at" in quote.content.decode()
    response = alice_client.post(
        reverse("order_new"), {**drip_data(default_service, runs="3"), "action": "order"}
    )
    assert response.status_code == 302
    assert Order.objects.get(user=alice).quantity == 200


def test_a_ticked_drip_feed_needs_runs_and_interval(alice_client, alice, default_service):
    Service.objects.filter(pk=default_service.pk).update(dripfeed=True)
    response = alice_client.post(
        reverse("order_new"), {**drip_data(default_service, dripfeed="on"), "action": "order"}
    )
    assert response.status_code == 400 and not Order.objects.exists()
    assert response.context["form"].errors.keys() == {"runs", "interval"}
    response = alice_client.post(
        reverse("order_new"),
        {
            **drip_data(default_service, dripfeed="on", runs="3", interval="30"),
            "action": "order",
        },
    )
    order = Order.objects.get(user=alice)
    assert order.quantity == 600 and order.params["runs"] == "3"


def test_the_picker_shows_whole_names_and_this_customers_prices(alice_client, alice, category):
    long_name = "Instagram Followers " + "really " * 20 + "real [Refill 30D] [Max 1M]"
    service = Service.objects.create(name=long_name, category=category, min=1, max=9, rate=4)
    from catalog.models import CustomerDiscount

    CustomerDiscount.objects.create(user=alice, percent=Decimal("25"))
    body = alice_client.get(reverse("order_new")).content.decode()
    assert f'data-rate="$3.00">{service.pk} — {long_name} — $3.00<' in body


def test_the_page_makes_as_many_queries_for_many_services(alice_client, alice, category, place):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert alice_client.get(reverse("order_new")).status_code == 200
        return len(queries)

    first = Service.objects.create(name="S 0", category=category, min=1, max=1000, rate=1)
    place(first, quantity="5")
    few = count()
    Service.objects.bulk_create(
        [Service(name=f"S {i}", category=category, min=1, max=9, rate=i) for i in range(1, 300)]
    )
    assert count() == few


def test_a_search_finds_services_in_other_categories_when_its_own_has_none(
    alice_client, default_service
):
    other = Category.objects.create(name="YouTube", sort_order=2)
    views = Service.objects.create(name="YouTube Views", category=other, min=1, max=10, rate=1)
    # The page shows the preselected service's category; the customer searches for another.
    params = {"category": default_service.category_id, "q": "youtube"}
    response = alice_client.get(reverse("order_new"), params)
    assert [o.pk for o in response.context["services"]] == [views.pk]
    assert selected(response) == views and response.context["category_id"] == ""  # all
    # A search that matches in the category stays in it.
    response = alice_client.get(reverse("order_new"), {**params, "q": "followers"})
    assert [o.pk for o in response.context["services"]] == [default_service.pk]


def test_the_picker_stops_a_tier_price_at_the_cost_without_a_query_more(
    alice_client, alice, category, provider
):
    """The picker reads each service's upstream rate and exchange rate with its rows: a tier
    that stops at the cost (the API's rule, catalog.pricing.CustomerPricing) prices 300
    services with no second query for their costs, and the side card takes the picker's price."""
    from accounts.models import Tier
    from catalog.models import UpstreamService
    from catalog.selectors import service_rate_for_user

    provider.exchange_rate = Decimal("2")
    provider.save()
    upstream = UpstreamService.objects.create(
        provider=provider, service_id="9", name="Up", rate=Decimal("0.45"), min=1, max=9
    )
    # Cost 0.45 * 2 = 0.90; 20% off 1.00 would be 0.80: the tier's price stops at 0.90.
    floored = Service.objects.create(
        name="Floored", category=category, upstream=upstream, min=1, max=9, rate=Decimal("1")
    )
    manual = Service.objects.create(
        name="Manual", category=category, min=1, max=9, rate=Decimal("1")
    )
    Service.objects.bulk_create(
        [Service(name=f"S {i}", category=category, min=1, max=9, rate=i) for i in range(1, 300)]
    )

    def get() -> tuple[str, int]:
        with CaptureQueriesContext(connection) as queries:
            response = alice_client.get(reverse("order_new"), {"service": floored.pk})
        assert (
            response.status_code == 200
            and response.context["rate"] == response.context["services"][0].customer_rate
        )
        return response.content.decode(), len(queries)

    _, at_retail = get()
    Tier.objects.create(name="Gold", min_spent=Decimal("0"), discount_percent=Decimal("20"))
    body, with_tier = get()
    assert f'data-rate="$0.90">{floored.pk} — Floored — $0.90<' in body
    assert f'data-rate="$0.80">{manual.pk} — Manual — $0.80<' in body  # no cost: no floor
    assert service_rate_for_user(user=alice, service=floored) == Decimal("0.9")
    assert with_tier == at_retail
    # Session, user, the service asked for, the picker's rows, the custom rates, the discount
    # and tier, the balance, the layout's three counts (notifications, news, tickets) and the
    # categories on sale: no query per service, none for the costs or the side card's price.
    assert with_tier == 11
