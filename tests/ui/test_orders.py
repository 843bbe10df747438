"""New order, the charge preview, mass order, the order list, refill and cancel: with plain
POSTs (what a browser without JavaScript sends) and the htmx fragments."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import LedgerEntry
from catalog.models import CustomerRate, Service
from orders.models import CancelRequest, Order, Refill

pytestmark = pytest.mark.django_db


def balance(user) -> Decimal:
    user.wallet.refresh_from_db()
    return user.wallet.balance


def order_form(service, token="t1", **fields):
    return {"service": service.pk, "token": token, "action": "order", **fields}


def test_form_shows_exactly_the_fields_of_the_type(alice_client, default_service, comments_service):
    default = alice_client.get(reverse("order_new"), {"service": default_service.pk})
    fields = set(default.context["form"].fields) - {"service", "token"}
    assert fields == {"link", "quantity"}  # no drip-feed: the service does not allow it
    comments = alice_client.get(reverse("order_new"), {"service": comments_service.pk})
    assert set(comments.context["form"].fields) - {"service", "token"} == {"link", "comments"}
    Service.objects.filter(pk=default_service.pk).update(dripfeed=True)
    drip = alice_client.get(reverse("order_new"), {"service": default_service.pk})
    assert {"runs", "interval"} <= set(drip.context["form"].fields)


def test_service_description_renders_allowed_html_with_line_breaks(alice_client, default_service):
    # Issue 11 #20: the provider's <b> is bold, not shown as "&lt;b&gt;"; a script is dropped.
    body = alice_client.get(reverse("order_new"), {"service": default_service.pk}).content.decode()
    assert "Real-looking <b>profiles</b><br>Starts in 1 hour" in body
    assert "&lt;b&gt;" not in body
    Service.objects.filter(pk=default_service.pk).update(
        description="Fast<script>alert('x')</script>\n<img src=x onerror=alert(1)>ok"
    )
    for name in ("order_new", "services"):
        page = alice_client.get(reverse(name), {"service": default_service.pk}).content.decode()
        assert "Fast<br>ok" in page and "alert(" not in page and "onerror" not in page, name
    assert "2.00" in body and "10 / 10000" in body


def test_price_shown_is_this_customers(alice_client, alice, default_service):
    CustomerRate.objects.create(user=alice, service=default_service, rate=Decimal("1.5"))
    response = alice_client.get(reverse("order_new"), {"service": default_service.pk})
    assert response.context["rate"] == Decimal("1.5")
    assert "1.50" in alice_client.get(reverse("services")).content.decode()


def test_picker_filters_by_category_and_search(alice_client, default_service, comments_service):
    response = alice_client.get(reverse("order_new"), {"q": "comments"})
    assert [o.pk for o in response.context["services"]] == [comments_service.pk]
    response = alice_client.get(reverse("order_new"), {"q": str(default_service.pk)})
    assert default_service.pk in [o.pk for o in response.context["services"]]


def test_ordering_charges_and_lands_on_the_order(alice_client, alice, default_service):
    response = alice_client.post(
        reverse("order_new"),
        order_form(default_service, link="https://instagram.com/p/xyz", quantity="1000"),
    )
    order = Order.objects.get(user=alice)
    assert response.status_code == 302
    assert response["Location"] == reverse("order_detail", args=[order.pk])
    assert order.charge == Decimal("2.00000")
    assert balance(alice) == Decimal("48.00000")
    assert LedgerEntry.objects.filter(order_ref=order.pk, kind="charge").count() == 1


def test_the_same_form_sent_twice_orders_once(alice_client, alice, default_service):
    data = order_form(default_service, link="https://instagram.com/p/xyz", quantity="1000")
    first = alice_client.post(reverse("order_new"), data)
    second = alice_client.post(reverse("order_new"), data)
    assert first["Location"] == second["Location"]
    assert Order.objects.filter(user=alice).count() == 1
    assert balance(alice) == Decimal("48.00000")


def test_a_token_reused_with_other_values_gets_a_fresh_form(alice_client, alice, default_service):
    first = order_form(default_service, link="https://instagram.com/p/xyz", quantity="1000")
    assert alice_client.post(reverse("order_new"), first).status_code == 302
    other = {**first, "quantity": "2000"}
    response = alice_client.post(reverse("order_new"), other)
    assert response.status_code == 400
    assert "already sent with other values" in response.content.decode()
    form = response.context["form"]
    assert form.data["token"] not in ("", "t1")  # a new token: sending again orders once more
    assert form.data["quantity"] == "2000"  # what the customer typed stays in the form
    assert Order.objects.filter(user=alice).count() == 1


def test_custom_comments_counts_lines(alice_client, alice, comments_service):
    response = alice_client.post(
        reverse("order_new"),
        order_form(
            comments_service, link="https://instagram.com/p/xyz", comments="Nice!\nGreat\n\nWow"
        ),
    )
    assert response.status_code == 302
    order = Order.objects.get(user=alice)
    assert order.quantity == 3 and order.charge == Decimal("0.03000")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"link": "https://instagram.com/p/x", "quantity": "5"}, "quantity"),
        ({"link": "https://instagram.com/p/x", "quantity": "abc"}, "quantity"),
        ({"link": "", "quantity": "100"}, "link"),
        ({"link": "line\tbreak", "quantity": "100"}, "link"),
        ({"link": "x" * 2001, "quantity": "100"}, "link"),
    ],
)
def test_bad_input_shows_the_error_next_to_the_field_and_charges_nothing(
    alice_client, alice, default_service, fields, field
):
    response = alice_client.post(reverse("order_new"), order_form(default_service, **fields))
    assert response.status_code == 400
    assert f'id="id_{field}_error"' in response.content.decode()
    assert response.context["form"].errors[field]
    assert not Order.objects.exists()
    assert balance(alice) == Decimal("50.00000")


@pytest.mark.parametrize("link", ["not a link", "@channel", "instagram.com/someone"])
def test_a_link_is_any_text_the_provider_takes(alice_client, alice, default_service, link):
    form = alice_client.get(reverse("order_new"), {"service": default_service.pk}).context["form"]
    assert form.fields["link"].help_text == "Link to the page, post or profile."
    assert "inputmode" not in form.fields["link"].widget.attrs  # no URL-only keyboard
    response = alice_client.post(
        reverse("order_new"), order_form(default_service, link=link, quantity="100")
    )
    assert response.status_code == 302
    assert Order.objects.get(user=alice).link == link


def test_an_order_whose_charge_rounds_to_zero_is_refused(alice_client, alice, default_service):
    CustomerRate.objects.create(user=alice, service=default_service, rate=Decimal("0.0001"))
    data = order_form(default_service, link="@channel", quantity="10")
    response = alice_client.post(reverse("order_new"), data)
    assert response.status_code == 400
    assert 'id="id_quantity_error"' in response.content.decode()
    assert "rounds to 0.00000: order at least 50 units." in str(
        response.context["form"].errors["quantity"]
    )
    assert not Order.objects.exists()
    quote = alice_client.post(reverse("order_quote"), data)
    assert "rounds to 0.00000" in quote.content.decode()


def test_insufficient_funds_charges_nothing(alice_client, alice, default_service):
    Service.objects.filter(pk=default_service.pk).update(rate=Decimal("10"))  # 10000 cost 100
    response = alice_client.post(
        reverse("order_new"),
        order_form(default_service, link="https://instagram.com/p/x", quantity="10000"),
    )
    assert response.status_code == 400
    assert "Not enough funds" in response.content.decode()
    assert balance(alice) == Decimal("50.00000") and not Order.objects.exists()


def test_preview_button_without_javascript(alice_client, alice, default_service):
    data = order_form(default_service, link="https://instagram.com/p/x", quantity="2500")
    data["action"] = "quote"
    response = alice_client.post(reverse("order_new"), data)
    assert response.status_code == 200
    assert response.context["quote"]["ok"].charge == Decimal("5.00000")
    assert not Order.objects.exists()


def test_live_quote_fragment(alice_client, alice, default_service):
    url = reverse("order_quote")
    ok = alice_client.post(
        url,
        {
            "service": default_service.pk,
            "token": "x",
            "link": "https://instagram.com/p/x",
            "quantity": "1500",
        },
    )
    assert 'data-testid="charge">$3.00' in ok.content.decode()
    missing = alice_client.post(url, {"service": default_service.pk, "token": "x"})
    assert "Fill in link, quantity" in missing.content.decode()
    bad = alice_client.post(
        url,
        {
            "service": default_service.pk,
            "token": "x",
            "link": "https://instagram.com/p/x",
            "quantity": "1",
        },
    )
    assert "quote-error" in bad.content.decode()
    assert not Order.objects.exists() and balance(alice) == Decimal("50.00000")


def test_mass_order_accepts_and_refuses_line_by_line(
    alice_client, alice, default_service, comments_service
):
    text = "\n".join(
        [
            f"{default_service.pk} | https://instagram.com/p/1 | 1000",
            f"{default_service.pk} | https://instagram.com/p/2 | 5",
            "999999 | https://instagram.com/p/3 | 100",
            f"{comments_service.pk} | https://instagram.com/p/4 | 10",
            "just some words",
            f"{default_service.pk} | https://instagram.com/p/5 | 500",
        ]
    )
    response = alice_client.post(reverse("mass_order"), {"orders": text, "token": "batch-1"})
    assert response.status_code == 200
    results = response.context["results"]
    assert [bool(r.order) for r in results] == [True, False, False, False, False, True]
    assert all(r.error for r in results if not r.order)
    assert Order.objects.filter(user=alice, source="mass").count() == 2
    assert balance(alice) == Decimal("47.00000")
    # Sending the same batch again (a reload) charges nothing more.
    alice_client.post(reverse("mass_order"), {"orders": text, "token": "batch-1"})
    assert Order.objects.filter(user=alice).count() == 2
    assert balance(alice) == Decimal("47.00000")


def test_mass_order_needs_at_least_one_line(alice_client):
    response = alice_client.post(reverse("mass_order"), {"orders": " \n ", "token": "b"})
    assert response.status_code == 400


def test_order_list_tabs_search_and_pagination(alice_client, default_service, place):
    completed = place(default_service, status="completed", link="https://instagram.com/p/done")
    active = place(default_service, status="in_progress", link="https://instagram.com/p/going")
    processing = place(default_service, status="processing", link="https://instagram.com/p/proc")
    queued = place(default_service)
    url = reverse("orders")

    def ids(**params):
        return [row.order.pk for row in alice_client.get(url, params).context["orders"]]

    assert ids() == [queued.pk, processing.pk, active.pk, completed.pk]
    assert ids(status="pending") == [queued.pk]
    assert ids(status="in_progress") == [processing.pk, active.pk]
    assert ids(status="completed") == [completed.pk]
    assert ids(status="canceled") == []
    assert ids(q=str(active.pk)) == [active.pk]
    assert ids(q="p/done") == [completed.pk]
    for _ in range(26):
        place(default_service, quantity="10")
    assert len(ids()) == 25 and len(ids(page=2)) == 5


def test_progress_and_polling_only_while_active(alice_client, default_service, place):
    active = place(default_service, status="in_progress", quantity="200")
    Order.objects.filter(pk=active.pk).update(remains=50)
    done = place(default_service, status="completed")
    body = alice_client.get(reverse("orders")).content.decode()
    assert f'hx-get="{reverse("order_row", args=[active.pk])}"' in body
    assert f'hx-get="{reverse("order_row", args=[done.pk])}"' not in body
    row = alice_client.get(reverse("order_row", args=[active.pk])).content.decode()
    assert "150 of 200" in row and 'hx-trigger="every' in row
    assert "progress-bar-animated" in row and "text-bg-primary" in row
    detail = alice_client.get(reverse("order_detail", args=[active.pk])).content.decode()
    assert "150 of 200" in detail and 'hx-trigger="every' in detail
    finished = alice_client.get(reverse("order_detail", args=[done.pk])).content.decode()
    assert 'hx-trigger="every' not in finished and "progress-bar-animated" not in finished
    assert "text-bg-success" in finished


def test_refill_and_cancel_buttons_exactly_where_allowed(
    alice_client, alice, default_service, comments_service, place
):
    completed = place(default_service, status="completed")
    old = place(default_service, status="completed")
    Order.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=31))
    running = place(default_service, status="in_progress")
    no_refill = place(comments_service, status="completed", comments="a\nb", quantity="2")
    body = alice_client.get(reverse("orders")).content.decode()
    assert reverse("order_refill", args=[completed.pk]) in body
    assert reverse("order_refill", args=[old.pk]) not in body  # the window is over
    assert reverse("order_refill", args=[running.pk]) not in body
    assert reverse("order_refill", args=[no_refill.pk]) not in body
    assert reverse("order_cancel", args=[running.pk]) in body
    assert reverse("order_cancel", args=[completed.pk]) not in body
    assert reverse("order_cancel", args=[no_refill.pk]) not in body


def test_refill_request_and_history(alice_client, default_service, place):
    order = place(default_service, status="completed")
    response = alice_client.post(
        reverse("order_refill", args=[order.pk]), {"next": reverse("orders")}
    )
    assert response.status_code == 302 and response["Location"] == reverse("orders")
    refill = Refill.objects.get(order=order)
    body = alice_client.get(reverse("orders")).content.decode()
    assert f"Refill {refill.pk}" in body
    assert reverse("order_refill", args=[order.pk]) not in body  # one open refill at a time
    again = alice_client.post(reverse("order_refill", args=[order.pk]), follow=True)
    assert "already in progress" in again.content.decode()
    assert Refill.objects.filter(order=order).count() == 1
    detail = alice_client.get(reverse("order_detail", args=[order.pk])).content.decode()
    assert f"Refill {refill.pk}" in detail


def test_cancel_request(alice_client, default_service, place):
    order = place(default_service, status="in_progress")
    response = alice_client.post(
        reverse("order_cancel", args=[order.pk]),
        {"next": "https://evil.example.com/", "confirmed": "yes"},
    )
    assert response["Location"] == reverse("order_detail", args=[order.pk])  # no open redirect
    assert CancelRequest.objects.filter(order=order).count() == 1


def test_average_completion_time_on_the_price_list(
    alice_client, alice, default_service, comments_service, place
):
    from orders.services import service_average_times_refresh

    now = timezone.now()
    for minutes in (30, 60, 90, 60, 60, 60, 30, 90, 60, 60):  # median 60, the 10 needed
        order = place(default_service, status="completed")
        Order.objects.filter(pk=order.pk).update(
            created_at=now - timedelta(minutes=minutes + 5), finished_at=now - timedelta(minutes=5)
        )
    service_average_times_refresh()
    response = alice_client.get(reverse("services"))
    by_id = {row.service.pk: row for _, group in response.context["groups"] for row in group}
    assert by_id[default_service.pk].average_time == timedelta(minutes=60)
    assert by_id[comments_service.pk].average_time is None
    assert "1 h" in response.content.decode()


def test_price_list_filter_and_htmx_fragment(alice_client, default_service, comments_service):
    response = alice_client.get(reverse("services"), {"q": "comments"})
    assert response.context["count"] == 1
    fragment = alice_client.get(
        reverse("services"), {"category": default_service.category_id}, HTTP_HX_REQUEST="true"
    )
    assert fragment.context["count"] == 2 and b"<html" not in fragment.content


def test_order_anew_from_a_disabled_service_is_refused(alice_client, alice, default_service):
    Service.objects.filter(pk=default_service.pk).update(is_enabled=False)
    response = alice_client.post(
        reverse("order_new"),
        order_form(default_service, link="https://instagram.com/p/x", quantity="100"),
    )
    assert response.status_code == 400
    assert not Order.objects.exists() and balance(alice) == Decimal("50.00000")


def test_row_fragment_actions_return_to_the_list_page(alice_client, default_service, place):
    order = place(default_service, status="completed")
    row = alice_client.get(
        reverse("order_row", args=[order.pk]),
        HTTP_HX_CURRENT_URL="http://testserver/orders/?status=completed&page=1",
    )
    assert 'name="next" value="/orders/?status=completed&amp;page=1"' in row.content.decode()
    elsewhere = alice_client.get(
        reverse("order_row", args=[order.pk]), HTTP_HX_CURRENT_URL="https://evil.example.com/x"
    )
    assert f'name="next" value="{reverse("orders")}"' in elsewhere.content.decode()


@pytest.mark.parametrize("junk", ["99999999999999999999999", "²", "-1", "1e5", "#", "🙂", "0"])
def test_junk_ids_never_crash(alice_client, alice, default_service, junk):
    assert (
        alice_client.get(
            reverse("order_new"), {"service": junk, "category": junk, "q": junk}
        ).status_code
        == 200
    )
    assert (
        alice_client.get(reverse("orders"), {"q": junk, "page": junk, "status": junk}).status_code
        == 200
    )
    assert alice_client.get(reverse("services"), {"q": junk, "category": junk}).status_code == 200
    mass = alice_client.post(
        reverse("mass_order"), {"orders": f"{junk} | https://x.com/a | 100", "token": "j"}
    )
    assert mass.status_code == 200 and mass.context["results"][0].error
    quote = alice_client.post(reverse("order_quote"), {"service": junk})
    assert quote.status_code == 200
    assert alice_client.get(f"/orders/{2**64}/").status_code == 404
    assert balance(alice) == Decimal("50.00000")


def test_price_list_history_restore_gets_the_whole_page(alice_client, default_service):
    response = alice_client.get(
        reverse("services"), HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert b"<html" in response.content


def test_pages_make_the_same_number_of_queries_for_few_or_many_orders(
    alice_client, default_service, place
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count(url):
        with CaptureQueriesContext(connection) as queries:
            assert alice_client.get(url).status_code == 200
        return len(queries)

    place(default_service, status="completed")
    few = {name: count(reverse(name)) for name in ("orders", "services", "funds", "home")}
    for status in ["completed", "in_progress", "partial", "queued"] * 5:
        order = place(default_service, status=status, quantity="50")
        if status == "completed":
            Refill.objects.create(order=order)
    many = {name: count(reverse(name)) for name in ("orders", "services", "funds", "home")}
    assert many == few


def test_messages_are_not_eaten_by_background_htmx_requests(alice_client, default_service, place):
    order = place(default_service, status="completed")
    alice_client.post(reverse("order_refill", args=[order.pk]))
    alice_client.get(reverse("order_detail", args=[order.pk]), HTTP_HX_REQUEST="true")
    page = alice_client.get(reverse("order_detail", args=[order.pk])).content.decode()
    assert f"of order {order.pk} is requested" in page


def test_order_page_shows_the_types_own_parameters(alice_client, comments_service, place):
    order = place(comments_service, comments="First!\n<b>bold</b>", quantity="2")
    body = alice_client.get(reverse("order_detail", args=[order.pk])).content.decode()
    assert "First!<br>&lt;b&gt;bold&lt;/b&gt;" in body
    assert '<dt class="col-5">Comments</dt>' in body


def test_a_nul_in_a_search_is_no_server_error(alice_client, default_service):
    # PostgreSQL refuses NUL in a text parameter; the searches drop it instead of failing.
    response = alice_client.get(reverse("order_new"), {"q": "Insta\x00gram"})
    assert response.status_code == 200 and default_service.pk in [
        o.pk for o in response.context["services"]
    ]
    response = alice_client.get(reverse("services"), {"q": "Insta\x00gram"})
    assert response.status_code == 200 and response.context["count"] == 1
    assert alice_client.get(reverse("orders"), {"q": "p/\x00"}).status_code == 200


def test_order_list_page_links_keep_the_search(alice_client, default_service, place):
    for _ in range(27):
        place(default_service, status="completed", link="https://instagram.com/p/kept")
    place(default_service, status="completed", link="https://instagram.com/p/other")
    response = alice_client.get(reverse("orders"), {"status": "completed", "q": "p/kept"})
    page = response.content.decode()
    assert 'href="?status=completed&amp;q=p%2Fkept&amp;page=2"' in page
    second = alice_client.get(reverse("orders"), {"status": "completed", "q": "p/kept", "page": 2})
    assert len(second.context["orders"]) == 2  # 27 matches: 25 + 2, the other link left out


def test_row_fragment_survives_a_malformed_current_url(alice_client, default_service, place):
    order = place(default_service, status="in_progress")
    row = alice_client.get(
        reverse("order_row", args=[order.pk]), HTTP_HX_CURRENT_URL="http://[::1/orders/"
    )
    assert row.status_code == 200
    assert 'name="next" value="/orders/"' in row.content.decode()


def test_a_manual_services_order_shows_cancel_since_the_service_accepts_it(
    alice_client, alice, category, place
):
    # A service without an upstream: its orders wait for the admin (status manual), and
    # order_cancel_request cancels them at once with a full refund. The button was missing.
    manual = Service.objects.create(
        name="Hand-made",
        category=category,
        type="Default",
        min=10,
        max=1000,
        rate=Decimal("2.00"),
        cancel=True,
    )
    order = place(manual)
    assert order.status == Order.Status.MANUAL
    body = alice_client.get(reverse("orders")).content.decode()
    assert reverse("order_cancel", args=[order.pk]) in body
    alice_client.post(reverse("order_cancel", args=[order.pk]), {"confirmed": "yes"})
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELED and balance(alice) == Decimal("50.00000")


def test_a_form_without_its_hidden_fields_says_so(alice_client, alice, default_service):
    # A stale or hand-made form without its token: the page answered 400 with no message at
    # all (hidden fields have no place for their error) and the preview said "Fill in none".
    fields = {"service": default_service.pk, "link": "https://x.com/a", "quantity": "100"}
    response = alice_client.post(reverse("order_new"), fields)
    body = response.content.decode()
    assert response.status_code == 400 and body.count("incomplete or out of date") == 1
    quote = alice_client.post(reverse("order_quote"), fields).content.decode()
    assert "incomplete or out of date" in quote and "none" not in quote
    mass = alice_client.post(reverse("mass_order"), {"orders": f"{default_service.pk} | x | 100"})
    assert mass.status_code == 400 and "incomplete or out of date" in mass.content.decode()
    assert balance(alice) == Decimal("50.00000") and not Order.objects.exists()


def test_an_htmx_poll_after_the_session_ended_sends_the_browser_to_log_in(
    client, default_service, place
):
    # It followed the redirect and swapped the whole login page into the order's row.
    order = place(default_service, status="in_progress")
    response = client.get(
        reverse("order_row", args=[order.pk]),
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/orders/?status=in_progress",
    )
    assert response.status_code == 401
    assert response["HX-Redirect"] == "/accounts/login/?next=/orders/%3Fstatus%3Din_progress"
    quote = client.post(
        reverse("order_quote"), {"service": default_service.pk}, HTTP_HX_REQUEST="true"
    )
    assert quote.status_code == 401 and quote["HX-Redirect"].startswith("/accounts/login/")
    # Without htmx it is the usual redirect.
    plain = client.get(reverse("order_row", args=[order.pk]))
    assert plain.status_code == 302 and plain["Location"].startswith("/accounts/login/")
