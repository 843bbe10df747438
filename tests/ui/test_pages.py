"""Every customer page renders, for the right people only, with assets served by the panel."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

CUSTOMER_PAGES = [
    "home",
    "order_new",
    "mass_order",
    "orders",
    "services",
    "funds",
    "funds_add",
    "api_docs",
    "account_settings",
    "account_security",
    "news",
    "tickets",
    "ticket_new",
]


@pytest.mark.parametrize("name", CUSTOMER_PAGES)
def test_customer_page_renders(alice_client, default_service, name):
    response = alice_client.get(reverse(name))
    assert response.status_code == 200
    body = response.content.decode()
    assert "alice" in body or name != "home"
    assert "csrfmiddlewaretoken" in body  # at least the log-out form
    # Assets come from the panel itself, never from a CDN.
    assert "/static/vendor/bootstrap-5.3.9/css/bootstrap.min.css" in body
    assert "/static/vendor/htmx.org-2.0.11/htmx.min.js" in body
    for cdn in ("jsdelivr", "unpkg", "cdnjs", "googleapis", "https://cdn"):
        assert cdn not in body


@pytest.mark.parametrize("name", CUSTOMER_PAGES[1:])
def test_customer_pages_need_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize(
    "name",
    [
        "home",
        "account_login",
        "account_signup",
        "account_reset_password",
        "terms",
        "faq",
        "privacy",
    ],
)
def test_public_pages_render(client, name):
    assert client.get(reverse(name)).status_code == 200


def test_order_detail_renders(alice_client, default_service, place):
    order = place(default_service, status="in_progress")
    response = alice_client.get(reverse("order_detail", args=[order.pk]))
    assert response.status_code == 200
    assert f"Order {order.pk}" in response.content.decode()


@pytest.mark.parametrize(
    "name",
    [
        "order_new",
        "order_quote",
        "mass_order",
        "api_docs",
        "account_settings",
        "account_login",
        "api_key_allowlist",
        "account_sessions_end_others",
    ],
)
def test_posts_without_the_csrf_token_are_refused(alice, name):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse(name), {"service": "1"}).status_code == 403
