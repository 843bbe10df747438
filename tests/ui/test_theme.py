"""Issue 17: dark mode. The server writes the saved choice on <html> (no flash of the wrong
colours), auto is left to static/panel/theme.js, the choice is kept on the customer (and in a
cookie for visitors who are not logged in)."""

import pytest
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db


def html_tag(client, url="/") -> str:
    body = client.get(url).content.decode()
    return body[body.index("<html") : body.index(">", body.index("<html")) + 1]


def test_auto_by_default_with_the_early_script(alice_client):
    body = alice_client.get(reverse("orders")).content.decode()
    assert 'data-theme-choice="auto"' in html_tag(alice_client)
    head = body.split("</head>", 1)[0]
    # In <head>, before the styles, not deferred: it runs before the first paint.
    assert '<script src="/static/panel/theme.js"></script>' in head
    assert head.index("panel/theme.js") < head.index("bootstrap.min.css")


def test_the_choice_is_saved_on_the_customer_and_rendered(alice_client, alice):
    response = alice_client.post(reverse("theme_set"), {"theme": "dark", "next": "/orders/"})
    assert response.status_code == 302 and response["Location"] == "/orders/"
    alice.refresh_from_db()
    assert alice.theme == User.Theme.DARK
    tag = html_tag(alice_client, reverse("orders"))
    assert 'data-bs-theme="dark"' in tag and 'data-theme-choice="dark"' in tag
    # Kept with the account: another browser of the same customer gets it too.
    alice_client.cookies.clear()
    alice_client.force_login(alice)
    assert 'data-bs-theme="dark"' in html_tag(alice_client)
    alice_client.post(reverse("theme_set"), {"theme": "light"})
    tag = html_tag(alice_client)
    assert 'data-bs-theme="light"' in tag and 'data-theme-choice="light"' in tag


def test_a_visitor_not_logged_in_keeps_it_in_a_cookie(client):
    response = client.post(reverse("theme_set"), {"theme": "dark"})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert response.cookies["panel_theme"].value == "dark"
    assert 'data-bs-theme="dark"' in html_tag(client, reverse("account_login"))


def test_unknown_values_and_foreign_next_are_refused(alice_client, alice):
    assert alice_client.post(reverse("theme_set"), {"theme": "pink"}).status_code == 400
    alice.refresh_from_db()
    assert alice.theme == User.Theme.AUTO
    away = alice_client.post(reverse("theme_set"), {"theme": "dark", "next": "https://evil.test/"})
    assert away["Location"] == reverse("home")
    alice_client.logout()
    alice_client.cookies["panel_theme"] = '"><script>'
    assert 'data-theme-choice="auto"' in html_tag(alice_client)


def test_the_toggle_is_in_the_header_and_a_page_without_javascript(alice_client):
    body = alice_client.get(reverse("orders")).content.decode()
    assert 'id="theme-toggle"' in body and 'data-testid="theme-menu"' in body
    page = alice_client.get(reverse("theme_set"), {"next": "/orders/"}).content.decode()
    assert 'value="/orders/"' in page
    for value in ("light", "dark", "auto"):
        assert f'name="theme" value="{value}"' in page
