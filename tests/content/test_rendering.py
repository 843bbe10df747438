"""Markdown written by staff is rendered, then cleaned by the one nh3 policy (content/sanitize.py)
that service descriptions use too."""

import re

import pytest

from catalog.services.descriptions import description_sanitize
from content.rendering import markdown_html
from content.sanitize import html_sanitize


def test_markdown_is_rendered():
    html = markdown_html("## Maintenance\n\n**Bold**, *italic* and [docs](https://example.com/x).")
    assert "<h2>Maintenance</h2>" in html
    assert "<strong>Bold</strong>" in html and "<em>italic</em>" in html
    assert '<a href="https://example.com/x" rel="nofollow noopener">docs</a>' in html


def test_tables_lists_and_code_are_kept():
    html = markdown_html("| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n\n`x < y`")
    assert "<table>" in html and "<td>1</td>" in html
    assert "<li>one</li>" in html
    assert "<code>x &lt; y</code>" in html


def test_script_tags_are_removed_with_their_content():
    html = markdown_html(
        "Hello\n\n<script>alert('x')</script>\n\n<p>after<script>steal()</script></p>"
    )
    assert "<script" not in html.lower()
    assert "alert" not in html and "steal" not in html
    assert "Hello" in html and "after" in html


@pytest.mark.parametrize(
    "text",
    [
        "[click](javascript:alert(1))",
        '<a href="javascript:alert(1)">click</a>',
        '<a href="JaVaScRiPt:alert(1)">click</a>',
        '<a href="data:text/html,<script>alert(1)</script>">click</a>',
        '<a href="vbscript:msgbox(1)">click</a>',
    ],
)
def test_javascript_and_data_links_lose_their_target(text):
    html = markdown_html(text)
    # No link leads anywhere but http(s) or mailto (Markdown's refused link stays as text).
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert all(h.startswith(("http:", "https:", "mailto:")) for h in hrefs), html
    assert "<script" not in html and "click" in html


@pytest.mark.parametrize(
    "text",
    [
        '<img src="x" onerror="alert(1)">',
        '<p onclick="alert(1)">text</p>',
        '<a href="https://example.com" onmouseover="alert(1)">text</a>',
        "<b onerror=alert(1)>text</b>",
    ],
)
def test_event_attributes_are_removed(text):
    html = markdown_html(text)
    assert "alert" not in html and "onerror" not in html and "onclick" not in html
    assert "onmouseover" not in html


def test_styles_images_and_iframes_are_dropped():
    html = markdown_html(
        '<p style="color:red">red</p><iframe src="https://example.com"></iframe>'
        "<style>body{display:none}</style>![pic](https://example.com/p.png)"
    )
    assert "style" not in html and "iframe" not in html and "<img" not in html
    assert "display:none" not in html
    assert "red" in html


def test_empty_text_renders_nothing():
    assert markdown_html("") == "" and markdown_html("   \n") == ""


def test_sanitizing_is_idempotent():
    once = markdown_html("# T\n\n<b>x</b> [l](https://e.com) <script>x</script>")
    assert html_sanitize(once, tags={"h1", "p", "b", "a"}, attributes={"a": {"href"}}) == once


def test_service_descriptions_share_the_policy():
    # The provider's HTML goes through the same cleaner, with its smaller allow-list.
    cleaned = description_sanitize(
        '<h2>T</h2><a href="javascript:x()" onclick="y()">l</a><script>z()</script>'
    )
    assert cleaned == 'T<a rel="nofollow noopener">l</a>'
