"""Terms, FAQ and Privacy: public pages at fixed addresses, a default text before staff write
them, a version that goes up with each published change, linked in every page's footer."""

import pytest
from django.test import Client
from django.urls import reverse

from content.models import SitePage, SitePageRevision
from content.selectors import site_page_get, terms_version_current
from content.services import site_page_publish

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("/terms/", "Terms of service"),
        ("/faq/", "Frequently asked questions"),
        ("/privacy/", "Privacy policy"),
    ],
)
def test_unwritten_pages_show_a_default_without_login(path, title, settings):
    settings.PANEL_NAME = "Boost Panel"
    response = Client().get(path)
    assert response.status_code == 200
    body = response.content.decode()
    assert f'<h1 class="h3">{title}</h1>' in body
    assert "Version" not in body


def test_default_terms_name_the_panel(settings):
    settings.PANEL_NAME = "Boost Panel"
    assert "<strong>Boost Panel</strong>" in Client().get("/terms/").content.decode()


def test_published_page_is_rendered_sanitized_with_its_version(staff):
    site_page_publish(
        slug="faq", title="FAQ", body="## Refills\n\nSee <script>x()</script>**here**.", by=staff
    )
    body = Client().get(reverse("faq")).content.decode()
    assert "<h2>Refills</h2>" in body and "<strong>here</strong>" in body
    assert "<script>x()" not in body and "Version 1" in body


def test_each_published_change_bumps_the_version_and_keeps_the_text(staff):
    assert terms_version_current() == 0
    page = site_page_publish(slug="terms", title="Terms", body="v1", by=staff)
    assert page.version == 1 and terms_version_current() == 1
    assert site_page_publish(slug="terms", title="Terms", body="v1", by=staff).version == 1
    assert site_page_publish(slug="terms", title="Terms", body="v2", by=staff).version == 2
    assert site_page_publish(slug="terms", title="Terms 2", body="v2", by=None).version == 3
    revisions = list(SitePageRevision.objects.filter(page=page).order_by("version"))
    assert [(r.version, r.title, r.body) for r in revisions] == [
        (1, "Terms", "v1"),
        (2, "Terms", "v2"),
        (3, "Terms 2", "v2"),
    ]
    assert site_page_get(slug="terms").body == "v2"


def test_an_unknown_page_is_refused():
    with pytest.raises(Exception) as error:
        site_page_publish(slug="about", title="x", body="y", by=None)
    assert "slug" in error.value.message_dict
    assert not SitePage.objects.exists()


def test_footer_links_to_the_three_pages_on_every_page(alice):
    anonymous = Client().get(reverse("account_login")).content.decode()
    signed_in = Client()
    signed_in.force_login(alice)
    for body in (anonymous, signed_in.get(reverse("home")).content.decode()):
        footer = body[body.index("<footer") :]
        for name, text in (("terms", "Terms"), ("faq", "FAQ"), ("privacy", "Privacy")):
            assert f'href="{reverse(name)}">{text}</a>' in footer


def test_admin_publishes_a_page_with_a_new_version(admin_client):
    url = reverse("admin:content_sitepage_add")
    form = {"slug": "terms", "title": "Terms", "body": "First"}
    form |= {"revisions-TOTAL_FORMS": "0", "revisions-INITIAL_FORMS": "0"}
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    page = SitePage.objects.get(slug="terms")
    assert page.version == 1 and page.updated_by.username == "admin"
    change = reverse("admin:content_sitepage_change", args=[page.pk])
    form = {"title": "Terms", "body": "Second"}
    form |= {"revisions-TOTAL_FORMS": "1", "revisions-INITIAL_FORMS": "1"}
    form |= {"revisions-MIN_NUM_FORMS": "0", "revisions-MAX_NUM_FORMS": "1000"}
    form |= {"revisions-0-id": str(page.revisions.get().pk), "revisions-0-page": str(page.pk)}
    response = admin_client.post(change, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    page.refresh_from_db()
    assert page.version == 2 and page.body == "Second"
    body = admin_client.get(change).content.decode()
    assert "<p>Second</p>" in body  # the preview of the rendered text
    # A page is never deleted: the versions customers accepted stay meaningful.
    delete = reverse("admin:content_sitepage_delete", args=[page.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert SitePage.objects.filter(pk=page.pk).exists()


def test_admin_preview_renders_and_sanitizes_without_saving(admin_client, client, alice):
    url = reverse("admin:content_announcement_preview")
    response = admin_client.post(url, {"body": "**hi** <img src=x onerror=alert(1)>"})
    assert response.status_code == 200
    assert response.content.decode() == "<p><strong>hi</strong> </p>"
    assert admin_client.get(url).status_code == 405
    client.force_login(alice)  # not staff: the admin's login, not the preview
    assert client.post(url, {"body": "x"}).status_code == 302
