"""Markdown written by staff (announcements, site pages) turned into HTML that a page may mark
safe: CommonMark (markdown-it-py) with tables and strikethrough, then cleaned to an allow-list
(content/sanitize.py). Raw HTML in the Markdown is let through the parser on purpose, so that a
stray `<b>` works, and the allow-list is what decides: a `<script>` is gone, not shown."""

from markdown_it import MarkdownIt

from content.sanitize import html_sanitize

MARKDOWN_TAGS = frozenset(
    {
        *("p", "br", "hr", "blockquote", "pre", "code"),
        *("h1", "h2", "h3", "h4", "h5", "h6"),
        *("strong", "em", "b", "i", "s", "del"),
        *("ul", "ol", "li", "a"),
        *("table", "thead", "tbody", "tr", "th", "td"),
    }
)
# No `img`: the Content-Security-Policy allows the panel's own images only, and staff have
# nowhere to upload one. No `class` or `style` (the policy refuses inline styles).
MARKDOWN_ATTRIBUTES = {"a": frozenset({"href", "title"}), "ol": frozenset({"start"})}

_PARSER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def markdown_html(text: str) -> str:
    """The Markdown `text` as sanitized HTML ("" for no text)."""
    if not text or not text.strip():
        return ""
    return html_sanitize(_PARSER.render(text), tags=MARKDOWN_TAGS, attributes=MARKDOWN_ATTRIBUTES)
