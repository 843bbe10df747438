"""The order types of API v2 and the parameters each one takes, as the providers' documents
(shared/seeds/) name them. One table that the order form, the reseller API, validation and the
upstream call all read, so that a type is described once.
"""

from dataclasses import dataclass
from enum import StrEnum


class OrderType(StrEnum):
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


class QuantityFrom(StrEnum):
    FIELD = "field"  # the customer types `quantity`
    LINES = "lines"  # one unit per line of a list field (comments, usernames)
    PACKAGE = "package"  # one package; the rate is per package, not per 1000
    SUBSCRIPTION = "subscription"  # min/max per post, see orders.services for the charge


@dataclass(frozen=True)
class TypeSpec:
    """Which API parameters an order type takes besides `service`."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    quantity_from: QuantityFrom = QuantityFrom.FIELD
    lines_field: str | None = None  # the list field whose lines are counted

    @property
    def fields(self) -> tuple[str, ...]:
        return self.required + self.optional


# Parameters that hold lists, one item per line ("separated by \r\n or \n" in the documents).
LIST_FIELDS = frozenset({"comments", "usernames", "hashtags", "groups"})
# Subscription delays in minutes: the union of the documented values (smmsend and smmcloud).
SUBSCRIPTION_DELAYS = (
    0,
    5,
    10,
    15,
    20,
    30,
    40,
    50,
    60,
    90,
    120,
    150,
    180,
    210,
    240,
    270,
    300,
    360,
    420,
    480,
    540,
    600,
)

TYPE_SPECS: dict[OrderType, TypeSpec] = {
    OrderType.DEFAULT: TypeSpec(("link", "quantity"), ("runs", "interval")),
    OrderType.PACKAGE: TypeSpec(("link",), quantity_from=QuantityFrom.PACKAGE),
    OrderType.CUSTOM_COMMENTS: TypeSpec(
        ("link", "comments"), quantity_from=QuantityFrom.LINES, lines_field="comments"
    ),
    OrderType.CUSTOM_COMMENTS_PACKAGE: TypeSpec(
        ("link", "comments"), quantity_from=QuantityFrom.PACKAGE
    ),
    OrderType.MENTIONS_WITH_HASHTAGS: TypeSpec(("link", "quantity", "usernames", "hashtags")),
    OrderType.MENTIONS_CUSTOM_LIST: TypeSpec(
        ("link", "usernames"), quantity_from=QuantityFrom.LINES, lines_field="usernames"
    ),
    OrderType.MENTIONS_HASHTAG: TypeSpec(("link", "quantity", "hashtag")),
    OrderType.MENTIONS_USER_FOLLOWERS: TypeSpec(("link", "quantity", "username")),
    OrderType.MENTIONS_MEDIA_LIKERS: TypeSpec(("link", "quantity", "media")),
    OrderType.COMMENT_LIKES: TypeSpec(("link", "quantity", "username")),
    OrderType.COMMENT_REPLIES: TypeSpec(
        ("link", "username", "comments"), quantity_from=QuantityFrom.LINES, lines_field="comments"
    ),
    OrderType.POLL: TypeSpec(("link", "quantity", "answer_number")),
    OrderType.INVITES_FROM_GROUPS: TypeSpec(("link", "quantity", "groups")),
    OrderType.SUBSCRIPTIONS: TypeSpec(
        ("username", "min", "max", "delay"),
        ("posts", "old_posts", "expiry"),
        quantity_from=QuantityFrom.SUBSCRIPTION,
    ),
}


def spec_for(type_name: str) -> TypeSpec | None:
    """The spec of a type by its name as providers write it (case-insensitive), or None."""
    lowered = type_name.strip().lower()
    for order_type, spec in TYPE_SPECS.items():
        if order_type.value.lower() == lowered:
            return spec
    return None
