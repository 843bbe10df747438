"""The price list (issue 17): favourites per customer (a POST, htmx or plain), the Favourites
filter, a card per service on a phone, and queries that do not grow with the services shown."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from catalog import views
from catalog.models import FavouriteService, Service

pytestmark = pytest.mark.django_db


def shown(response) -> list[int]:
    return [row.service.pk for _, group in response.context["groups"] for row in group]


def star(client, service, on: bool, **headers):
    return client.post(
        reverse("service_favourite", args=[service.pk]),
        {"favourite": "1" if on else "0", "next": "/services/?q=insta"},
        **headers,
    )


def test_a_star_is_kept_and_filters_the_list(
    alice_client, alice, default_service, comments_service
):
    response = star(alice_client, comments_service, True)
    assert response.status_code == 302 and response["Location"] == "/services/?q=insta"
    star(alice_client, comments_service, True)  # sent twice: still one favourite
    assert FavouriteService.objects.filter(user=alice).count() == 1
    page = alice_client.get(reverse("services"))  # a reload keeps it
    rows = {row.service.pk: row for _, group in page.context["groups"] for row in group}
    assert rows[comments_service.pk].favourite and not rows[default_service.pk].favourite
    assert shown(alice_client.get(reverse("services"), {"fav": "1"})) == [comments_service.pk]
    star(alice_client, comments_service, False)
    favourites = alice_client.get(reverse("services"), {"fav": "1"})
    assert shown(favourites) == [] and "No favourite service matches" in favourites.content.decode()


def test_htmx_gets_the_new_button_alone(alice_client, default_service):
    response = star(alice_client, default_service, True, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert 'aria-pressed="true"' in body and 'name="favourite" value="0"' in body
    assert body.count("<button") == 1 and "<form" not in body  # the page's one form stays


def test_favourites_belong_to_one_customer(
    alice_client, bob, client, default_service, comments_service
):
    star(alice_client, default_service, True)
    client.force_login(bob)
    assert shown(client.get(reverse("services"), {"fav": "1"})) == []
    star(client, comments_service, True)
    assert shown(client.get(reverse("services"), {"fav": "1"})) == [comments_service.pk]
    assert set(FavouriteService.objects.values_list("user__username", "service_id")) == {
        ("alice", default_service.pk),
        ("bob", comments_service.pk),
    }


def test_a_star_needs_a_post_a_service_on_sale_and_a_safe_return(
    alice_client, alice, default_service
):
    url = reverse("service_favourite", args=[default_service.pk])
    assert alice_client.get(url).status_code == 405
    Service.objects.filter(pk=default_service.pk).update(is_enabled=False)
    assert star(alice_client, default_service, True).status_code == 404
    assert alice_client.post("/services/99999999999999999999/favourite/").status_code == 404
    Service.objects.filter(pk=default_service.pk).update(is_enabled=True)
    response = alice_client.post(url, {"favourite": "1", "next": "https://evil.example/"})
    assert response["Location"] == reverse("services")
    assert not FavouriteService.objects.exclude(user=alice).exists()


def test_each_service_is_one_card_with_price_limits_time_and_order(alice_client, default_service):
    body = alice_client.get(reverse("services")).content.decode()
    # No table that scrolls sideways: one list item per service, its labels shown on a phone.
    assert "<table" not in body and "table-responsive" not in body
    assert body.count('class="list-group-item service-item"') == 1
    for label in ("Rate per 1000 ", "Min / max ", "Average time "):
        assert f"{label}</span>" in body
    assert f'href="/order/?service={default_service.pk}"' in body


def test_the_page_makes_as_many_queries_for_many_services(
    alice_client, alice, default_service, category
):
    def count(**params) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert alice_client.get(reverse("services"), params).status_code == 200
        return len(queries)

    star(alice_client, default_service, True)
    few, few_fav = count(), count(fav="1")
    services = Service.objects.bulk_create(
        [Service(name=f"S {i}", category=category, min=1, max=9, rate=i) for i in range(1, 150)]
    )
    FavouriteService.objects.bulk_create(
        [FavouriteService(user=alice, service=s) for s in services[::3]]
    )
    assert (count(), count(fav="1")) == (few, few_fav)


def test_the_lists_star_is_the_button_htmx_gets(alice_client, comments_service, default_service):
    """The list builds its stars' addresses and names in the view (catalog.views._Lines), the
    star endpoint on its own: both give the same button."""
    for service in (default_service, comments_service):
        button = star(alice_client, service, True, HTTP_HX_REQUEST="true").content.decode()
        assert f'formaction="/services/{service.pk}/favourite/"' in button
        assert f'aria-label="Favourite: service {service.pk}"' in button
        assert button.strip() in alice_client.get(reverse("services")).content.decode()


def test_the_lines_texts_are_in_the_customers_language(alice_client, default_service):
    default_service.refill, default_service.refill_days = True, 30
    default_service.save()
    pk = default_service.pk
    body = alice_client.get(reverse("services"), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert f'aria-label="Избранное: услуга {pk}"' in body  # the star
    assert f'<span class="visually-hidden"> услугу {pk}</span>' in body  # the order link
    assert '<span class="badge text-bg-success">Рефилл 30 д</span>' in body
    assert f'href="/order/?service={pk}">Заказать<' in body


def test_url_for_id_gives_the_reversed_address_for_any_id():
    favourite_url = views.url_for_id("service_favourite")
    for pk in (1, 10, 123, 9_876_543_210_123, 2**63 - 1):
        assert favourite_url(pk) == reverse("service_favourite", args=[pk])
