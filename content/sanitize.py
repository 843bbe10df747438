"""The one HTML cleaning policy of the panel (nh3): what staff write in Markdown (announcements,
site pages) and what providers send in service descriptions (catalog/services/descriptions.py)
both pass through `html_sanitize`, each with its own allow-list of tags. A pure leaf: it imports
no app and no framework.

What never passes, whatever the allow-list: `<script>` and `<style>` (their content goes too,
not shown as text), event attributes (`onerror`, `onclick`...), `style` (the
Content-Security-Policy would refuse it anyway), and links whose scheme is not http, https or
mailto (`javascript:`, `data:`, `vbscript:`).
"""

from collections.abc import Mapping, Set
from functools import lru_cache

import nh3

URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Every link gets it: the panel does not vouch for where it leads, and the page it opens cannot
# reach back to ours through window.opener.
LINK_REL = "nofollow noopener"


def html_sanitize(html: str, *, tags: Set[str], attributes: Mapping[str, Set[str]]) -> str:
    """`html` reduced to `tags` and, per tag, `attributes`: other tags dropped with their text
    kept (except script and style, which go entirely), `<`, `>` and `&` in the text escaped.
    Idempotent: cleaning a cleaned text changes nothing."""
    if not html:
        return ""
    key = tuple(sorted((tag, frozenset(names)) for tag, names in attributes.items()))
    return _cleaner(frozenset(tags), key).clean(html.strip()).strip()


# An allow-list's cleaner is built once: building it cost 5 times the cleaning of a service
# description, and the price list cleans 100 of them per page. The panel has a few allow-lists.
@lru_cache(maxsize=16)
def _cleaner(
    tags: frozenset[str], attributes: tuple[tuple[str, frozenset[str]], ...]
) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(tags),
        attributes={tag: set(names) for tag, names in attributes},
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
    )
