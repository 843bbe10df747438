"""The price list in pages: filter kept across pages, prices and averages per page, the same
queries on every page, and page links that work with and without htmx."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from catalog import views
from catalog.models import Category, CustomerRate, Service

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(category, monkeypatch):
    monkeypatch.setattr(views, "SERVICES_PAGE_SIZE", 4)
    other = Category.objects.create(name="TikTok", sort_order=2)
    made = [
        Service.objects.create(
            name=f"{'Likes' if i % 2 else 'Views'} {i}",
            category=category if i < 7 else other,
            type="Default",
            min=10,
            max=1000,
            rate=Decimal("1.00") + i,
        )
        for i in range(10)
    ]
    return made


def listed(response) -> list[int]:
    return [row.service.pk for _, group in response.context["groups"] for row in group]


def test_pages_cover_every_service_once_at_the_customers_price(alice_client, alice, catalog):
    CustomerRate.objects.create(user=alice, service=catalog[9], rate=Decimal("0.123"))
    seen = []
    for page in (1, 2, 3):
        response = alice_client.get(reverse("services"), {"page": page})
        assert response.context["count"] == 10
        seen += listed(response)
    assert seen == [s.pk for s in catalog]
    assert "0.123" in response.content.decode()  # the last page carries the custom rate
    body = alice_client.get(reverse("services")).content.decode()
    assert "Page 1 of 3" in body and 'href="?page=2"' in body and "1\u20134 shown" in body
    # Junk or out-of-range pages answer a real page, never an error.
    assert listed(alice_client.get(reverse("services"), {"page": "99"})) == seen[8:]
    assert listed(alice_client.get(reverse("services"), {"page": "x"})) == seen[:4]


def test_page_links_keep_the_filter_and_search(alice_client, category, catalog):
    response = alice_client.get(reverse("services"), {"category": category.pk, "q": "likes"})
    likes_here = [s.pk for s in catalog if s.category_id == category.pk and "Likes" in s.name]
    assert response.context["count"] == len(likes_here) == 3
    response = alice_client.get(reverse("services"), {"q": "views"})
    assert response.context["count"] == 5
    body = response.content.decode()
    assert 'href="?q=views&amp;page=2"' in body
    second = alice_client.get(reverse("services"), {"q": "views", "page": 2})
    assert [s.pk for s in catalog if "Views" in s.name][4:] == listed(second)


def test_htmx_page_link_gets_the_table_alone(alice_client, catalog):
    fragment = alice_client.get(reverse("services"), {"page": 2}, HTTP_HX_REQUEST="true")
    body = fragment.content.decode()
    assert b"<html" not in fragment.content and 'hx-boost="true"' in body
    assert listed(fragment) == [s.pk for s in catalog][4:8]


def test_every_page_costs_the_same_queries(alice_client, catalog):
    def count(page):
        with CaptureQueriesContext(connection) as ctx:
            assert alice_client.get(reverse("services"), {"page": page}).status_code == 200
        return len(ctx)

    assert count(1) == count(2) == count(3)
