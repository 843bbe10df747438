"""Issue 11 #20: provider HTML in descriptions is cleaned to a small allow-list when the catalog
is synced or imported, existing rows are cleaned by a data migration, and pages render what
passed the allow-list (scripts gone, not shown as text)."""

import importlib

import pytest
from django.apps import apps
from django.template import Context, Template

from catalog.models import Service, UpstreamService
from catalog.services import catalog_import_services, catalog_sync_provider
from catalog.services.descriptions import description_html, description_sanitize
from providers.sandbox.catalog import build_catalog
from providers.services import provider_create
from tests.catalog.upstream import CatalogServer

HOSTILE = (
    "<b>Real</b> accounts<br/>Start: instant\n<script>alert('x')</script>"
    '<img src=x onerror="alert(1)"><a href="javascript:alert(2)">js</a>'
    '<a href="https://example.com/faq" target="_blank" onclick="alert(3)">FAQ</a>'
    "<span style='color:red'>red</span> <iframe src='https://evil.example'></iframe>a < b & c"
)


def test_sanitize_keeps_the_allow_list_and_drops_the_rest():
    clean = description_sanitize(HOSTILE)
    assert clean.startswith("<b>Real</b> accounts<br>Start: instant")
    for gone in ("<script", "alert", "<img", "onerror", "javascript:", "onclick", "target=",
                 "<span", "style=", "<iframe", "evil.example"):  # fmt: skip
        assert gone not in clean, gone
    assert '<a href="https://example.com/faq" rel="nofollow noopener">FAQ</a>' in clean
    assert "red" in clean and "a &lt; b &amp; c" in clean  # text of dropped tags kept, escaped
    assert description_sanitize(clean) == clean  # idempotent: the sync's comparison is stable
    for tag in ("i", "strong", "em", "p", "ul", "ol", "li"):
        assert description_sanitize(f"<{tag}>x</{tag}>") == f"<{tag}>x</{tag}>"


def test_description_html_keeps_plain_text_line_breaks():
    assert (
        description_html("Start: 0-1 hour\nSpeed: 5K/day\n") == "Start: 0-1 hour<br>Speed: 5K/day"
    )
    assert description_html("a<br>\nb") == "a<br>b"  # no doubled break
    assert description_html("<p>a</p>\n<ul><li>b</li></ul>") == "<p>a</p>\n<ul><li>b</li></ul>"
    assert description_html("") == ""


def test_template_filter_renders_only_sanitized_html():
    template = Template("{% load catalog_html %}{{ text|description_html }}")
    page = template.render(Context({"text": HOSTILE}))
    assert page.startswith("<b>Real</b> accounts<br>Start: instant<br>")
    assert "&lt;b&gt;" not in page and "<script" not in page and "alert(" not in page
    assert template.render(Context({"text": None})) == ""


def _awkward_items():
    # The sandbox's catalog with the hostile descriptions only tests ask for.
    return [s.to_api() for s in build_catalog(awkward=True)]


@pytest.mark.django_db
def test_sync_and_import_store_sanitized_descriptions(catalog_settings):
    with CatalogServer(_awkward_items()) as server:
        provider = provider_create(name="awkward", api_url=server.url, api_key=server.key)
        catalog_sync_provider(provider=provider)
        likes = UpstreamService.objects.get(provider=provider, service_id="3")
        assert likes.description == "<b>Real</b> accounts<br>Start: instant"
        assert "<script" in likes.raw["desc"]  # the raw reply stays as received, for staff
        assert not UpstreamService.objects.filter(description__contains="alert").exists()
        (service,) = catalog_import_services(provider=provider, upstream_ids=["24"])
    assert service.description == (
        'An ampersand in the name on purpose: a &lt; b &amp; c. <a rel="nofollow noopener">x</a>'
    )
    assert "javascript" not in Service.objects.get(pk=service.pk).description


@pytest.mark.django_db
def test_migration_sanitizes_existing_rows(catalog_settings, provider):
    up = UpstreamService.objects.create(
        provider=provider, service_id="9", name="x", rate=1, min=1, max=10, description=HOSTILE
    )
    migration = importlib.import_module("catalog.migrations.0004_sanitize_descriptions")
    migration.sanitize(apps, None)
    up.refresh_from_db()
    assert up.description == description_sanitize(HOSTILE)
