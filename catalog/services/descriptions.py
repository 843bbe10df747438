"""Service descriptions: providers send HTML in `desc` (seed 000 documents `<b>`, `<br>`), some
of it hostile. A description is cleaned to a small allow-list when it enters the panel (the
catalog sync and the import) and again when a page renders it, so only what passed the
allow-list is ever marked safe: the rest is dropped (a `<script>` and its content are gone, not
shown as text).
"""

import re

from content.sanitize import html_sanitize

# Formatting and links only. Attributes: `href` on links; the panel's one policy
# (content/sanitize.py) keeps http, https and mailto links only and gives every link
# rel="nofollow noopener" (the provider's links are not ours to vouch for).
ALLOWED_TAGS = frozenset({"b", "i", "strong", "em", "br", "p", "ul", "ol", "li", "a"})
ALLOWED_ATTRIBUTES = {"a": frozenset({"href"})}

# A description with paragraphs or lists is laid out by its tags; one without them is plain
# text whose line breaks are the layout (most providers send "Start: 0-1h\nSpeed: 5K/day").
_BLOCK_TAG = re.compile(r"<(?:p|ul|ol|li)\b")
_LINE_BREAK = re.compile(r"(?:<br>)?\r?\n")


def description_sanitize(text: str) -> str:
    """The description reduced to the allow-list: other tags dropped (their text kept, except
    inside script and style, which go entirely), attributes other than a link's `href` dropped,
    and `<`, `>` and `&` in the text escaped. Idempotent: cleaning a cleaned text changes
    nothing, so the sync's comparison with the stored row stays stable."""
    return html_sanitize(text, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES)


def description_html(text: str) -> str:
    """The description as HTML to mark safe in a page: sanitized (again: an admin may have
    typed it), with the line breaks of a plain-text description turned into `<br>`."""
    clean = description_sanitize(text)
    if _BLOCK_TAG.search(clean):
        return clean
    return _LINE_BREAK.sub("<br>", clean)
