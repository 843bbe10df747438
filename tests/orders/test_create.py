"""order_create / order_quote: every order type, valid and invalid, and the charge math."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import LedgerEntry
from accounts.services import InsufficientFunds
from catalog.models import CustomerRate
from orders.models import Order
from orders.services import OrderError, order_create, order_quote
from tests.orders.factories import make_provider, make_service

pytestmark = pytest.mark.django_db

LINK = "https://instagram.com/p/abc"


@pytest.fixture
def offline_provider(db):
    return make_provider()  # nothing listens there: these tests never call upstream


def _service(provider, order_type, **fields):
    return make_service(provider=provider, order_type=order_type, **fields)


def _create(alice, service, data, **kwargs):
    return order_create(user=alice, service=service, data=data, **kwargs)


def _nothing_written(alice, balance=Decimal("50")):
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == balance
    assert not Order.objects.exists()
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CHARGE).exists()


VALID = [
    ("Default", {"link": LINK, "quantity": "1000"}, 1000, {"quantity": "1000"}),
    ("Package", {"link": LINK}, 1, {}),
    (
        "Custom Comments",
        {"link": LINK, "comments": "one\r\ntwo\n\nthree\n" + "x\n" * 7},
        10,
        {"comments": "one\ntwo\nthree\n" + "\n".join(["x"] * 7)},
    ),
    ("Custom Comments Package", {"link": LINK, "comments": "a\nb"}, 1, {"comments": "a\nb"}),
    (
        "Mentions with Hashtags",
        {"link": LINK, "quantity": "100", "usernames": "ann\nbob", "hashtags": "#a\nb"},
        100,
        {"quantity": "100", "usernames": "ann\nbob", "hashtags": "#a\nb"},
    ),
    (
        "Mentions Custom List",
        {"link": LINK, "usernames": "\n".join(f"u{i}" for i in range(12))},
        12,
        {"usernames": "\n".join(f"u{i}" for i in range(12))},
    ),
    (
        "Mentions Hashtag",
        {"link": LINK, "quantity": "200", "hashtag": "#sun"},
        200,
        {"quantity": "200", "hashtag": "#sun"},
    ),
    (
        "Mentions User Followers",
        {"link": LINK, "quantity": "100", "username": "ann"},
        100,
        {"quantity": "100", "username": "ann"},
    ),
    (
        "Mentions Media Likers",
        {"link": LINK, "quantity": "100", "media": "https://x.com/p/1"},
        100,
        {"quantity": "100", "media": "https://x.com/p/1"},
    ),
    (
        "Comment Likes",
        {"link": LINK, "quantity": "20", "username": "ann"},
        20,
        {"quantity": "20", "username": "ann"},
    ),
    (
        "Comment Replies",
        {"link": LINK, "username": "ann", "comments": "a\nb\nc\nd\ne"},
        5,
        {"comments": "a\nb\nc\nd\ne", "username": "ann"},
    ),
    (
        "Poll",
        {"link": LINK, "quantity": "100", "answer_number": "2"},
        100,
        {"quantity": "100", "answer_number": "2"},
    ),
    (
        "Invites from Groups",
        {"link": LINK, "quantity": "100", "groups": "g1\ng2"},
        100,
        {"quantity": "100", "groups": "g1\ng2"},
    ),
]


@pytest.mark.parametrize(
    ("order_type", "data", "quantity", "params"), VALID, ids=[v[0] for v in VALID]
)
def test_order_create_accepts_every_type(
    alice, offline_provider, order_type, data, quantity, params
):
    service = _service(offline_provider, order_type, rate="3.00000")
    order = _create(alice, service, data)
    order.refresh_from_db()
    package = order_type.endswith("Package")
    expected = Decimal("3.00000") if package else Decimal("3") * quantity / 1000
    assert order.quantity == quantity
    assert order.params == params
    assert order.charge == expected
    assert order.status == Order.Status.QUEUED
    assert order.rate == Decimal("3")
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("50") - expected
    entry = LedgerEntry.objects.get(order_ref=order.pk)
    assert entry.kind == LedgerEntry.Kind.CHARGE and entry.amount == -expected
    assert order.status_changes.get().new_status == Order.Status.QUEUED
    assert order_quote(user=alice, service=service, data=data).charge == expected


INVALID = [
    ("Default", {"quantity": "100"}, "link"),
    # A link is any one line of text (see test_a_link_is_any_one_line_of_text); these are not.
    ("Default", {"link": "https://x.com/a\tb", "quantity": "100"}, "link"),
    ("Default", {"link": "https://x.com/a\nb", "quantity": "100"}, "link"),
    ("Default", {"link": "https://x.com/" + "a" * 2000, "quantity": "100"}, "link"),
    ("Default", {"link": "@" + "a" * 2000, "quantity": "100"}, "link"),
    ("Default", {"link": "@chan\x00nel", "quantity": "100"}, "link"),
    ("Default", {"link": "@chan\x1bnel", "quantity": "100"}, "link"),
    ("Default", {"link": "@chan\x7fnel", "quantity": "100"}, "link"),
    ("Default", {"link": "@chan\x85nel", "quantity": "100"}, "link"),
    ("Default", {"link": "@chan\u2028nel", "quantity": "100"}, "link"),
    ("Default", {"link": "@chan\ud800nel", "quantity": "100"}, "link"),
    ("Default", {"link": LINK}, "quantity"),
    ("Default", {"link": LINK, "quantity": "abc"}, "quantity"),
    ("Default", {"link": LINK, "quantity": "-5"}, "quantity"),
    ("Default", {"link": LINK, "quantity": "1.5"}, "quantity"),
    ("Default", {"link": LINK, "quantity": "49"}, "quantity"),
    ("Default", {"link": LINK, "quantity": "10001"}, "quantity"),
    ("Default", {"link": LINK, "quantity": "99999999999999999999"}, "quantity"),
    ("Default", {"link": LINK, "quantity": "100", "runs": "2", "interval": "5"}, "runs"),
    ("Custom Comments", {"link": LINK, "comments": "a\nb"}, "comments"),
    ("Custom Comments", {"link": LINK, "comments": "   \n  "}, "comments"),
    (
        "Custom Comments",
        {"link": LINK, "comments": "\n".join("c" * 1 for _ in range(12)), "quantity": "11"},
        "quantity",
    ),
    ("Custom Comments Package", {"link": LINK}, "comments"),
    ("Mentions with Hashtags", {"link": LINK, "quantity": "100", "usernames": "ann"}, "hashtags"),
    (
        "Mentions with Hashtags",
        {"link": LINK, "quantity": "100", "usernames": "a b c", "hashtags": "x"},
        "usernames",
    ),
    ("Mentions Custom List", {"link": LINK, "usernames": "a\nb"}, "usernames"),
    ("Mentions Hashtag", {"link": LINK, "quantity": "100", "hashtag": "two words"}, "hashtag"),
    ("Mentions User Followers", {"link": LINK, "quantity": "100"}, "username"),
    ("Mentions Media Likers", {"link": LINK, "quantity": "100", "media": "a\x01b"}, "media"),
    ("Mentions Media Likers", {"link": LINK, "quantity": "100", "media": "m" * 2001}, "media"),
    ("Comment Likes", {"link": LINK, "quantity": "20", "username": "bad name!"}, "username"),
    ("Comment Replies", {"link": LINK, "comments": "a\nb\nc\nd\ne"}, "username"),
    ("Poll", {"link": LINK, "quantity": "100", "answer_number": "0"}, "answer_number"),
    ("Poll", {"link": LINK, "quantity": "100", "answer_number": "first"}, "answer_number"),
    ("Poll", {"link": LINK, "quantity": "100"}, "answer_number"),
    ("Invites from Groups", {"link": LINK, "quantity": "100", "groups": ""}, "groups"),
    ("Package", {}, "link"),
]


@pytest.mark.parametrize(
    ("order_type", "data", "field"),
    INVALID,
    ids=[f"{v[0]}-{v[2]}-{i}" for i, v in enumerate(INVALID)],
)
def test_order_create_rejects_bad_input_naming_the_field(
    alice, offline_provider, order_type, data, field
):
    service = _service(offline_provider, order_type)
    with pytest.raises(OrderError) as info:
        _create(alice, service, data)
    assert info.value.field == field
    assert info.value.message.endswith(".")
    with pytest.raises(OrderError):
        order_quote(user=alice, service=service, data=data)
    _nothing_written(alice)


@pytest.mark.parametrize(
    "link",
    [
        "instagram.com/p/x",  # no scheme: what most reseller scripts send
        "@channel",
        "some.user_name",
        "t.me/канал",
        "ftp://x.com/a",
        "https://x.com/a b",
        "http://[abc/p",  # not parsable as a URL, still text the provider may take
        "https://x.com/" + "a" * (2000 - len("https://x.com/")),  # exactly the limit
    ],
)
def test_a_link_is_any_one_line_of_text(alice, offline_provider, link):
    service = _service(offline_provider, "Default")
    order = _create(alice, service, {"link": f"  {link}  ", "quantity": "100"})
    order.refresh_from_db()
    assert order.link == link  # stored and sent as sent, only the outer spaces trimmed
    media = _service(offline_provider, "Mentions Media Likers")
    data = {"link": link, "quantity": "100", "media": link}
    assert _create(alice, media, data).params["media"] == link


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ("@chan\tnel", "Link must be one line without control characters."),
        ("@chan\x00nel", '"link" holds a character that cannot be stored.'),
        ("x" * 2001, "Link is too long (at most 2000 characters)."),
    ],
)
def test_link_refusals_say_why(alice, offline_provider, link, message):
    service = _service(offline_provider, "Default")
    with pytest.raises(OrderError) as info:
        _create(alice, service, {"link": link, "quantity": "100"})
    assert (info.value.field, info.value.message) == ("link", message)
    _nothing_written(alice)


def test_a_nul_in_any_field_is_refused_by_name(alice, offline_provider):
    service = _service(offline_provider, "Custom Comments")
    with pytest.raises(OrderError) as info:
        _create(alice, service, {"link": LINK, "comments": "tw\x00o\n" + "x\n" * 10})
    assert info.value.field == "comments"
    assert info.value.message == '"comments" holds a character that cannot be stored.'
    _nothing_written(alice)


def test_a_charge_that_rounds_to_zero_is_refused(alice, offline_provider):
    # 0.004 per 1000: one unit costs 0.000004, which rounds to 0.00000: the order would be
    # placed upstream (at the provider's cost) and charge nothing.
    service = _service(offline_provider, "Default", rate="0.004", min=1)
    data = {"link": LINK, "quantity": "1"}
    with pytest.raises(OrderError) as info:
        _create(alice, service, data)
    assert info.value.field == "quantity"
    assert info.value.message == (
        "This order's charge at 0.004 per 1000 rounds to 0.00000: order at least 2 units."
    )
    with pytest.raises(OrderError):
        order_quote(user=alice, service=service, data=data)
    _nothing_written(alice)
    order = _create(alice, service, {"link": LINK, "quantity": "2"})
    assert order.charge == Decimal("0.00001")  # 0.000008 rounds up: the least charge


def test_a_charge_that_rounds_to_zero_names_the_field_that_sizes_it(alice, offline_provider):
    comments = _service(offline_provider, "Custom Comments", rate="0.001", min=1)
    with pytest.raises(OrderError) as info:
        _create(alice, comments, {"link": LINK, "comments": "one\ntwo"})
    assert info.value.field == "comments" and "at least 5 units" in info.value.message
    package = _service(offline_provider, "Package", rate="0.000001")
    with pytest.raises(OrderError) as info:
        _create(alice, package, {"link": LINK})
    assert info.value.field == "service" and "rounds to 0.00000" in info.value.message
    _nothing_written(alice)


def test_a_customer_rate_that_rounds_the_charge_to_zero_is_refused(alice, offline_provider):
    service = _service(offline_provider, "Default", rate="2.00", min=1)
    CustomerRate.objects.create(user=alice, service=service, rate=Decimal("0.0001"))
    with pytest.raises(OrderError) as info:
        _create(alice, service, {"link": LINK, "quantity": "49"})
    assert info.value.field == "quantity" and "at least 50 units" in info.value.message
    _nothing_written(alice)


def test_a_rate_of_zero_on_purpose_places_a_free_order(alice, offline_provider):
    free = _service(offline_provider, "Default", rate="0")
    order = _create(alice, free, {"link": LINK, "quantity": "100"})
    assert order.charge == Decimal("0") and order.status == Order.Status.QUEUED
    service = _service(offline_provider, "Default", rate="2.00")
    CustomerRate.objects.create(user=alice, service=service, rate=Decimal("0"))
    order = _create(alice, service, {"link": LINK, "quantity": "100"})
    assert order.charge == Decimal("0") and order.rate == Decimal("0")
    assert Order.objects.count() == 2
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CHARGE).exists()


def test_quantity_message_names_the_limits(alice, offline_provider):
    service = _service(offline_provider, "Default")
    with pytest.raises(OrderError, match=r"Quantity must be between 50 and 10000\."):
        _create(alice, service, {"link": LINK, "quantity": "10"})


def test_dripfeed_charges_every_run(alice, offline_provider):
    service = _service(offline_provider, "Default", sandbox_id=2, rate="0.70000")
    order = _create(
        alice, service, {"link": LINK, "quantity": "1000", "runs": "5", "interval": "30"}
    )
    assert order.quantity == 5000
    assert order.params == {"quantity": "1000", "runs": "5", "interval": "30"}
    assert order.charge == Decimal("3.50000")  # 0.7 x 1000 x 5 / 1000


def test_dripfeed_too_large_in_total_is_refused_by_name(alice, offline_provider):
    # Each factor within its limit, the product past the quantity column: a clear error, not
    # a database error (a 500 in the panel, "Internal error" in the API).
    service = _service(offline_provider, "Default", sandbox_id=2, rate="0.001", max=10**7)
    with pytest.raises(OrderError) as info:
        _create(
            alice, service, {"link": LINK, "quantity": "10000000", "runs": "300", "interval": "5"}
        )
    assert info.value.field == "runs"
    _nothing_written(alice)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"runs": "5"}, "interval"),
        ({"interval": "5"}, "runs"),
        ({"runs": "0", "interval": "5"}, "runs"),
        ({"runs": "x", "interval": "5"}, "runs"),
        ({"runs": "5", "interval": "-1"}, "interval"),
    ],
)
def test_dripfeed_needs_runs_and_interval(alice, offline_provider, data, field):
    service = _service(offline_provider, "Default", sandbox_id=2)
    with pytest.raises(OrderError) as info:
        _create(alice, service, {"link": LINK, "quantity": "1000", **data})
    assert info.value.field == field
    _nothing_written(alice)


def test_charge_rounds_once_half_up(alice, offline_provider):
    service = _service(offline_provider, "Default", rate="0.00125", min=1)
    order = _create(alice, service, {"link": LINK, "quantity": "100"})
    assert order.charge == Decimal("0.00013")  # 0.000125 rounds half up


def test_customer_rate_and_cost_snapshot(alice, offline_provider):
    service = _service(offline_provider, "Default", rate="2.00")  # upstream 0.90
    CustomerRate.objects.create(user=alice, service=service, rate=Decimal("1.5"))
    order = _create(alice, service, {"link": LINK, "quantity": "2000"})
    assert order.rate == Decimal("1.5") and order.charge == Decimal("3.00000")
    assert order.cost == Decimal("1.80000")
    service.rate = Decimal("9")
    service.save()
    order.refresh_from_db()
    assert order.charge == Decimal("3.00000")


def test_disabled_service_is_refused(alice, offline_provider):
    service = _service(offline_provider, "Default", is_enabled=False)
    with pytest.raises(OrderError) as info:
        _create(alice, service, {"link": LINK, "quantity": "100"})
    assert info.value.field == "service"
    _nothing_written(alice)


def test_insufficient_funds_writes_nothing(alice, offline_provider):
    service = _service(offline_provider, "Default", rate="10")
    with pytest.raises(InsufficientFunds):
        _create(alice, service, {"link": LINK, "quantity": "6000"})
    _nothing_written(alice)


def test_manual_service_waits_for_the_admin(alice):
    service = make_service(order_type="Default", rate="1")
    order = _create(alice, service, {"link": LINK, "quantity": "100"})
    assert order.status == Order.Status.MANUAL
    assert order.provider is None and order.cost is None
    assert order.public_status == "Pending"


# --- subscriptions --------------------------------------------------------------------------

FUTURE = (timezone.now() + timedelta(days=30)).strftime("%d/%m/%Y")
SUB = {"username": "ann", "min": "100", "max": "200", "delay": "30", "posts": "10"}


def test_subscription_reserves_posts_times_max(alice, offline_provider):
    service = _service(offline_provider, "Subscriptions", rate="1.00")
    order = _create(alice, service, {**SUB, "old_posts": "2", "expiry": FUTURE})
    assert order.quantity == 200 * 12
    assert order.charge == Decimal("2.40000")
    assert order.link == ""
    assert order.params == {
        "username": "ann",
        "min": "100",
        "max": "200",
        "delay": "30",
        "posts": "10",
        "old_posts": "2",
        "expiry": FUTURE,
    }


def test_unlimited_subscription_needs_the_admins_permission(alice, offline_provider):
    service = _service(offline_provider, "Subscriptions", rate="1.00")
    data = {k: v for k, v in SUB.items() if k != "posts"}
    with pytest.raises(OrderError) as info:
        _create(alice, service, data)
    assert info.value.field == "posts"
    _nothing_written(alice)
    service.allow_unlimited_subscriptions = True
    service.subscription_reserve_posts = 5
    service.save()
    order = _create(alice, service, data)
    assert order.quantity == 1000 and order.charge == Decimal("1.00000")
    assert "posts" not in order.params


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"username": ""}, "username"),
        ({"min": "10"}, "min"),
        ({"max": "9000"}, "max"),
        ({"min": "300"}, "max"),
        ({"delay": "7"}, "delay"),
        ({"delay": ""}, "delay"),
        ({"posts": "0"}, "posts"),
        ({"old_posts": "-1"}, "old_posts"),
        ({"expiry": "2020-01-01"}, "expiry"),
        ({"expiry": "01/01/2020"}, "expiry"),
        ({"expiry": "31/02/2030"}, "expiry"),
    ],
)
def test_subscription_rejects_bad_fields(alice, offline_provider, change, field):
    service = _service(offline_provider, "Subscriptions")
    with pytest.raises(OrderError) as info:
        _create(alice, service, {**SUB, **change})
    assert info.value.field == field
    _nothing_written(alice)


# --- idempotency ----------------------------------------------------------------------------


def test_same_key_same_request_returns_the_first_order(alice, offline_provider):
    service = _service(offline_provider, "Default", rate="1")
    data = {"link": LINK, "quantity": "1000"}
    first = _create(alice, service, data, idempotency_key="k-1")
    again = _create(alice, service, {**data, "unknown": "ignored"}, idempotency_key="k-1")
    assert again.pk == first.pk
    assert Order.objects.count() == 1
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CHARGE).count() == 1


def test_same_key_different_request_is_refused(alice, offline_provider):
    service = _service(offline_provider, "Default", rate="1")
    _create(alice, service, {"link": LINK, "quantity": "1000"}, idempotency_key="k-1")
    with pytest.raises(OrderError) as info:
        _create(alice, service, {"link": LINK, "quantity": "2000"}, idempotency_key="k-1")
    assert info.value.field == "idempotency_key"
    assert Order.objects.count() == 1


def test_keys_are_per_customer(alice, bob, offline_provider):
    from accounts.services import balance_credit

    balance_credit(user=bob, amount=Decimal("10"))
    service = _service(offline_provider, "Default", rate="1")
    data = {"link": LINK, "quantity": "1000"}
    a = _create(alice, service, data, idempotency_key="same")
    b = _create(bob, service, data, idempotency_key="same")
    assert a.pk != b.pk


# --- the one statement of a charged order, inside a caller's transaction and without a wallet ----


def test_refusals_inside_a_callers_transaction_leave_it_usable(alice, offline_provider):
    """A refused order (the balance, or a key used for another request) rolls back to its own
    savepoint: the caller's transaction goes on and commits what it did."""
    from django.db import transaction

    from accounts.services import balance_credit

    service = _service(offline_provider, "Default", rate="10")
    data = {"link": LINK, "quantity": "1000"}
    with transaction.atomic():
        with pytest.raises(InsufficientFunds):
            _create(alice, service, {"link": LINK, "quantity": "6000"})
        first = _create(alice, service, data, idempotency_key="k-in-tx")
        with pytest.raises(OrderError):
            _create(alice, service, {**data, "quantity": "2000"}, idempotency_key="k-in-tx")
        balance_credit(user=alice, amount=Decimal("1"), memo="after the refusals")
    assert list(Order.objects.values_list("pk", flat=True)) == [first.pk]
    assert LedgerEntry.objects.get(kind=LedgerEntry.Kind.CHARGE).order_ref == first.pk
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("51") - first.charge


def test_a_customer_without_a_wallet_is_refused_and_nothing_is_written(alice, offline_provider):
    """An account older than wallets: the debit makes the wallet, then refuses the order on its
    balance of 0 (here inside the test's transaction, the order's savepoint takes the wallet
    back too); nothing of the order is written."""
    from accounts.models import Wallet

    LedgerEntry.objects.filter(user=alice).delete()
    Wallet.objects.filter(user=alice).delete()
    alice.refresh_from_db()
    service = _service(offline_provider, "Default")
    with pytest.raises(InsufficientFunds):
        _create(alice, service, {"link": LINK, "quantity": "1000"})
    assert not Order.objects.exists() and not LedgerEntry.objects.filter(user=alice).exists()
