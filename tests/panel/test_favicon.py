"""The panel's icon: /favicon.ico answers (browsers ask it on every page that names none), and
the customer pages and the admin name it in <head>."""

import pytest

pytestmark = pytest.mark.django_db

LINKS = ('rel="icon" href="/static/favicon.svg" type="image/svg+xml"', 'href="/static/favicon.ico"')


def test_favicon_ico_redirects_to_the_static_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == "/static/favicon.ico"
    served = client.get("/favicon.ico", follow=True)
    assert served.status_code == 200
    body = b"".join(served.streaming_content) if served.streaming else served.content
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO header
    assert b"PNG" in body[:64]


def test_the_svg_icon_is_served(client):
    response = client.get("/static/favicon.svg")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body.startswith(b"<svg")


def test_customer_pages_name_the_icon(client):
    page = client.get("/login/", follow=True).content.decode()
    assert all(link in page for link in LINKS)


@pytest.mark.parametrize("url", ["/admin/login/", "/admin/", "/admin/orders/order/"])
def test_admin_pages_name_the_icon(client, staff, url):
    if url != "/admin/login/":
        client.force_login(staff)
    page = client.get(url, follow=True).content.decode()  # the admin's login is allauth's
    assert all(link in page for link in LINKS), url
