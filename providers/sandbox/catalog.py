"""The sandbox provider's service catalog.

The catalog is generated, not stored: the same arguments always give the same services, so
a panel that synced it yesterday sees the same ids, rates and limits today. The base catalog
covers every order type found in the seed providers' docs (see /work/shared/seeds) with the
values real catalogs have: rates with five decimals, a tiny rate that rounds, multi-line
descriptions, HTML in a description (``<b>``, ``<br>``, as seed 000 documents), ``&`` and
non-ASCII in names. Its descriptions read like a provider's, since the demo panel shows them.

``build_catalog(total)`` pads the base catalog with plain ``Default`` services up to ``total``
so a benchmark can ask for thousands of services. ``build_catalog(awkward=True)`` swaps in the
hostile descriptions the tests need (a ``<script>``, an event handler, a ``javascript:`` link,
raw ``<`` and ``&``); the sandbox server never serves them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# Order types, spelled exactly as providers send them in `type`.
DEFAULT = "Default"
PACKAGE = "Package"
CUSTOM_COMMENTS = "Custom Comments"
CUSTOM_COMMENTS_PACKAGE = "Custom Comments Package"
MENTIONS_WITH_HASHTAGS = "Mentions with Hashtags"
MENTIONS_CUSTOM_LIST = "Mentions Custom List"
MENTIONS_HASHTAG = "Mentions Hashtag"
MENTIONS_USER_FOLLOWERS = "Mentions User Followers"
MENTIONS_MEDIA_LIKERS = "Mentions Media Likers"
COMMENT_LIKES = "Comment Likes"
COMMENT_REPLIES = "Comment Replies"
POLL = "Poll"
INVITES_FROM_GROUPS = "Invites from Groups"
SUBSCRIPTIONS = "Subscriptions"

ORDER_TYPES: tuple[str, ...] = (
    DEFAULT,
    PACKAGE,
    CUSTOM_COMMENTS,
    CUSTOM_COMMENTS_PACKAGE,
    MENTIONS_WITH_HASHTAGS,
    MENTIONS_CUSTOM_LIST,
    MENTIONS_HASHTAG,
    MENTIONS_USER_FOLLOWERS,
    MENTIONS_MEDIA_LIKERS,
    COMMENT_LIKES,
    COMMENT_REPLIES,
    POLL,
    INVITES_FROM_GROUPS,
    SUBSCRIPTIONS,
)

# Package types are sold per package: `rate` is the price of one package, not of 1000 units.
PACKAGE_TYPES = frozenset({PACKAGE, CUSTOM_COMMENTS_PACKAGE})


@dataclass(frozen=True)
class Service:
    """One sellable service, as the `services` action describes it."""

    service: int
    name: str
    type: str
    category: str
    rate: str  # kept as the exact string we publish, e.g. "0.90" or "1.23456"
    min: int
    max: int
    refill: bool = False
    cancel: bool = False
    dripfeed: bool = False
    desc: str = ""

    @property
    def rate_decimal(self) -> Decimal:
        return Decimal(self.rate)

    @property
    def is_package(self) -> bool:
        return self.type in PACKAGE_TYPES

    def to_api(self) -> dict[str, Any]:
        """The `services` item: a superset of the seed dialects (desc, dripfeed and cancel)."""
        return {
            "service": self.service,
            "name": self.name,
            "type": self.type,
            "category": self.category,
            "rate": self.rate,
            "min": str(self.min),
            "max": str(self.max),
            "refill": self.refill,
            "cancel": self.cancel,
            "dripfeed": self.dripfeed,
            "desc": self.desc,
        }


_IG_FOLLOWERS = "Instagram Followers"
_IG_LIKES = "Instagram Likes"
_IG_COMMENTS = "Instagram Comments"
_IG_MENTIONS = "Instagram Mentions"
_IG_OTHER = "Instagram Polls & Auto"
_YOUTUBE = "YouTube"
_TELEGRAM = "Telegram"
_TIKTOK = "TikTok"
_OTHER = "Other Networks"

# (name, type, category, rate, min, max, refill, cancel, dripfeed, desc); ids are 1..n in order.
_BASE: tuple[tuple[str, str, str, str, int, int, bool, bool, bool, str], ...] = (
    (
        "Instagram Followers [Refill 30D]",
        DEFAULT, _IG_FOLLOWERS, "0.90", 50, 10000, True, True, False,
        "Start: 0-1 hour\nSpeed: 5K/day\nRefill: 30 days",
    ),
    (
        "Instagram Followers [No Refill] [Cheap]",
        DEFAULT, _IG_FOLLOWERS, "0.35", 100, 50000, False, False, True,
        "Drops possible. No refill, no cancel.",
    ),
    (
        "Instagram Likes [Real]",
        DEFAULT, _IG_LIKES, "0.125", 10, 20000, False, True, True,
        "<b>Real</b> accounts<br>Start: instant\nSpeed: 10K/day",
    ),
    (
        "Instagram Starter Package (1000 Likes + 5000 Impressions)",
        PACKAGE, _IG_LIKES, "2.5", 1, 1, False, False, False,
        "One package per order; the rate is the price of the whole package.",
    ),
    (
        "Instagram Custom Comments",
        CUSTOM_COMMENTS, _IG_COMMENTS, "8", 10, 1500, False, True, False,
        "One comment per line. Quantity = number of lines.",
    ),
    (
        "Instagram Custom Comments Package (5 comments)",
        CUSTOM_COMMENTS_PACKAGE, _IG_COMMENTS, "1.20000", 1, 1, False, False, False,
        "Your comments, one per line. Priced per package.",
    ),
    (
        "Instagram Comment Likes",
        COMMENT_LIKES, _IG_COMMENTS, "1.8", 20, 5000, False, True, False,
        "Likes on one comment: pass the comment owner's username.",
    ),
    (
        "Instagram Comment Replies",
        COMMENT_REPLIES, _IG_COMMENTS, "12.5", 5, 500, False, True, False,
        "Replies to a comment: username of the comment owner plus one reply per line.",
    ),
    (
        "Instagram Mentions with Hashtags",
        MENTIONS_WITH_HASHTAGS, _IG_MENTIONS, "3.21", 100, 5000, False, False, False,
        "usernames and hashtags: one per line",
    ),
    (
        "Instagram Mentions Custom List",
        MENTIONS_CUSTOM_LIST, _IG_MENTIONS, "4.5", 10, 1000, False, False, False,
        "usernames: one per line. Quantity = number of lines.",
    ),
    (
        "Instagram Mentions Hashtag",
        MENTIONS_HASHTAG, _IG_MENTIONS, "2.75", 100, 10000, False, False, False,
        "Mentions users who posted under one hashtag.",
    ),
    (
        "Instagram Mentions User Followers",
        MENTIONS_USER_FOLLOWERS, _IG_MENTIONS, "2.99", 100, 10000, False, False, False,
        "Mentions the followers of one username.",
    ),
    (
        "Instagram Mentions Media Likers",
        MENTIONS_MEDIA_LIKERS, _IG_MENTIONS, "3.05", 100, 10000, False, False, False,
        "Mentions the likers of one post: pass its URL as media.",
    ),
    (
        "Instagram Poll Votes",
        POLL, _IG_OTHER, "0.75", 100, 10000, False, True, False,
        "answer_number: the poll option, starting at 1.",
    ),
    (
        "Instagram Auto Likes [Subscription]",
        SUBSCRIPTIONS, _IG_OTHER, "0.15", 50, 5000, False, True, False,
        "Likes on new posts of a username.\nmin/max: likes per post\ndelay: minutes",
    ),
    (
        "YouTube Views [Refill Lifetime]",
        DEFAULT, _YOUTUBE, "1.23456", 500, 1000000, True, True, True,
        "Retention 1-3 minutes\nStart: 0-6 hours\nSpeed: 50K/day",
    ),
    (
        "YouTube Likes [Refill 30D]",
        DEFAULT, _YOUTUBE, "4.2", 20, 10000, True, False, False,
        "Refill only, no cancel.",
    ),
    (
        "Telegram Channel Members [Refill 60D]",
        DEFAULT, _TELEGRAM, "0.99999", 100, 100000, True, True, True,
        "Public channels and groups only.",
    ),
    (
        "Telegram Post Views [Last Post]",
        DEFAULT, _TELEGRAM, "0.00125", 100, 1000000, False, False, False,
        "Views on the channel's last post.\nStart: 0-1 hour",
    ),
    (
        "Telegram Group Invites from Groups",
        INVITES_FROM_GROUPS, _TELEGRAM, "6.5", 100, 5000, False, True, False,
        "groups: source group links, one per line.",
    ),
    (
        "TikTok Views",
        DEFAULT, _TIKTOK, "0.01", 100, 10000000, False, True, True,
        "Fast start.",
    ),
    (
        "TikTok Followers [Refill 30D]",
        DEFAULT, _TIKTOK, "2.1", 100, 20000, True, True, False,
        "Start: 0-2 hours",
    ),
    (
        "X (Twitter) Followers ⚡ [Refill 30D]",
        DEFAULT, _OTHER, "5.5", 100, 10000, True, False, False,
        "Start: 0-6 hours\nSpeed: 1K/day\nRefill: 30 days",
    ),
    (
        "Facebook Page Likes & Followers",
        DEFAULT, _OTHER, "3.3333", 100, 50000, False, True, False,
        "Likes and followers on a public page.\nStart: 0-12 hours",
    ),
    (
        "Spotify Plays",
        DEFAULT, _OTHER, "0.5", 1000, 1000000, False, False, True,
        "Premium plays\nFrom several countries\nNo refill",
    ),
)  # fmt: skip

BASE_SIZE = len(_BASE)

# Extra services for big catalogs cycle through these; values are arbitrary but fixed.
_EXTRA_KINDS = ("Likes", "Followers", "Views", "Comments", "Shares", "Saves", "Plays")
_EXTRA_NETWORKS = ("Instagram", "TikTok", "YouTube", "Telegram", "Facebook", "Twitch", "Reddit")
_EXTRA_LIMITS = ((10, 5000), (50, 10000), (100, 100000), (1000, 1000000))


# Test-only descriptions (build_catalog(awkward=True)), by service id: what a careless or
# hostile provider sends, which the panel must clean before it shows anything.
AWKWARD_DESCRIPTIONS: dict[int, str] = {
    3: "<b>Real</b> accounts<br>Start: instant\n<script>alert('sandbox')</script>",
    23: "Non-ASCII in the name on purpose. <img src=x onerror=\"alert('sandbox')\">",
    24: 'An ampersand in the name on purpose: a < b & c. <a href="javascript:alert(1)">x</a>',
}


def _base_services(awkward: bool = False) -> Iterator[Service]:
    for index, row in enumerate(_BASE, start=1):
        name, type_, category, rate, min_, max_, refill, cancel, dripfeed, desc = row
        if awkward:
            desc = AWKWARD_DESCRIPTIONS.get(index, desc)
        yield Service(
            index, name, type_, category, rate, min_, max_, refill, cancel, dripfeed, desc
        )


def _extra_service(service_id: int) -> Service:
    """A plain Default service whose every field is a pure function of its id."""
    kind = _EXTRA_KINDS[service_id % len(_EXTRA_KINDS)]
    network = _EXTRA_NETWORKS[(service_id // len(_EXTRA_KINDS)) % len(_EXTRA_NETWORKS)]
    min_, max_ = _EXTRA_LIMITS[service_id % len(_EXTRA_LIMITS)]
    # A multiplicative hash spreads rates over 0.00100..99.99999 with up to five decimals.
    rate = Decimal(100 + (service_id * 2654435761) % 9999900) / Decimal(100000)
    return Service(
        service=service_id,
        name=f"{network} {kind} [Sandbox #{service_id}]",
        type=DEFAULT,
        category=f"Extra: {network} {kind}",
        rate=format(rate.normalize(), "f"),
        min=min_,
        max=max_,
        refill=service_id % 3 == 0,
        cancel=service_id % 2 == 0,
        dripfeed=service_id % 5 == 0,
        desc=f"Generated service {service_id}.",
    )


def build_catalog(total: int = 0, *, awkward: bool = False) -> list[Service]:
    """The catalog, padded with generated Default services up to `total` entries.

    A `total` at or below the base size gives the base catalog: every order type stays covered.
    `awkward` replaces a few descriptions with AWKWARD_DESCRIPTIONS (for tests).
    """
    services = list(_base_services(awkward))
    services.extend(_extra_service(i) for i in range(BASE_SIZE + 1, total + 1))
    return services


class Catalog:
    """The catalog with a lookup by id and the serialised `services` answer cached."""

    def __init__(self, total: int = 0) -> None:
        self.services = build_catalog(total)
        self._by_id = {s.service: s for s in self.services}
        # 5,000 services is ~1.5 MB of JSON: build the answer once, not per request.
        self._api_answer = [s.to_api() for s in self.services]

    def get(self, service_id: int) -> Service | None:
        return self._by_id.get(service_id)

    def api_answer(self) -> list[dict[str, Any]]:
        return self._api_answer

    def __len__(self) -> int:
        return len(self.services)
