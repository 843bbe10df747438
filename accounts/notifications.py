"""In-panel notices and their e-mails, for customers and staff (docs/notifications.md).

One call tells a user about an event:

    notify(user=order.user, event="order_refunded", context={"order_id": 12, "refund": amount})
    notify_staff(event="ticket_new", context={"ticket_id": 7, "subject": "…", "url": "/…"})

It writes the notice (the bell) in the caller's transaction and, when the user wants that mail,
queues it with Celery once the transaction commits: a change that rolls back leaves no notice
and sends nothing, and no mail is ever sent from inside a money transaction. The same change
told twice (a repeated poll, a replayed webhook) finds the first notice through `dedupe_key`.
"""

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Notification, NotificationPreference, User
from catalog.pricing import money_text

logger = logging.getLogger(__name__)

E = Notification.Event
CUSTOMER, STAFF = "customer", "staff"
UNSUBSCRIBE_SALT = "accounts.notifications.unsubscribe"
# A burst of the same staff event (a sweep sending 300 orders to review) gives one unread notice
# (and one mail) per staff member per window, not 300.
COALESCE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class EventKind:
    """One kind of event: who it is for, its notice's title and line (str.format over the
    context), where it links to, and whether it is mailed unless the user turned it off. Its
    mail is templates/notifications/email/<event>.txt and .html."""

    audience: str
    title: str | Promise  # gettext_lazy: said in the recipient's language (user_language)
    message: str | Promise
    link: Callable[[Mapping[str, Any]], str]
    email_default: bool = True
    coalesce: bool = False
    # Phrases worked out from the context for the title and line (a part said only when it
    # applies: "plus a bonus of 2.00 USD"), so the stored context stays plain figures.
    derive: Callable[[Mapping[str, Any]], dict[str, str]] | None = None


def _given_url(context: Mapping[str, Any]) -> str:
    return str(context.get("url", ""))


def _order_link(context: Mapping[str, Any]) -> str:
    return reverse("order_detail", args=[context["order_id"]])


def _admin_link(name: str, key: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda context: reverse(f"admin:{name}", args=[context[key]])


def _nonzero(amount: object) -> bool:
    """Whether a stored amount ("$2.00", or "2.00" in a notice from before the money format)
    is other than zero."""
    return amount is not None and any(c in "123456789" for c in str(amount))


def _paid_phrases(context: Mapping[str, Any]) -> dict[str, str]:
    """The bonus and the balance after it, as the mail says them (when they are known)."""
    bonus, balance = context.get("bonus"), context.get("balance")
    return {
        "bonus_phrase": _(", plus a bonus of {bonus}").format(bonus=bonus)
        if _nonzero(bonus)
        else "",
        "balance_phrase": " " + _("Your balance is now {balance}.").format(balance=balance)
        if balance not in (None, "")
        else "",
    }


def _status_phrase(context: Mapping[str, Any]) -> dict[str, str]:
    """The order's status as stored (the English label, e.g. "Partial": the mails test it) and
    as the recipient reads it: the same label through the catalog (orders.models.Order.Status's
    labels are its msgids)."""
    return {"status_label": _(str(context.get("status", "")))}


def _cause_phrase(context: Mapping[str, Any]) -> dict[str, str]:
    """What took the balance down, in the recipient's language (older notices have only the
    English "cause")."""
    if "order_ref" not in context:
        return {"cause_phrase": str(context.get("cause", ""))}
    if context["order_ref"] is None:
        return {"cause_phrase": _("a debit")}
    return {"cause_phrase": _("order {order_id}").format(order_id=context["order_ref"])}


def user_language(user: User | None) -> str:
    """The language of what the user reads outside a request (the bell's texts, mails): their
    saved choice (User.language), else the panel's default."""
    code = user.language if user is not None else ""
    return code if code in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


EVENTS: dict[str, EventKind] = {
    E.PAYMENT_RECEIVED: EventKind(
        CUSTOMER,
        gettext_lazy("Payment received: {amount}"),
        gettext_lazy(
            "{amount} were added to your balance{bonus_phrase} (payment #{payment_id})."
            "{balance_phrase}"
        ),
        lambda c: reverse("payment_detail", args=[c["payment_public_id"]]),
        derive=_paid_phrases,
    ),
    E.ORDER_REFUNDED: EventKind(
        CUSTOMER,
        gettext_lazy("Order {order_id} {status_label}: {refund} refunded"),
        gettext_lazy("Order {order_id} ended {status_label}; {refund} went back to your balance."),
        _order_link,
        derive=_status_phrase,
    ),
    E.REFILL_DONE: EventKind(
        CUSTOMER,
        gettext_lazy("Refill of order {order_id} done"),
        gettext_lazy("The provider finished the refill of order {order_id}."),
        _order_link,
    ),
    E.TICKET_ANSWERED: EventKind(
        CUSTOMER,
        gettext_lazy("Ticket #{ticket_id} answered"),
        gettext_lazy("Support answered your ticket “{subject}”."),
        _given_url,
    ),
    E.BALANCE_LOW: EventKind(
        CUSTOMER,
        gettext_lazy("Your balance is below {threshold}"),
        gettext_lazy("After {cause_phrase} your balance is {balance}."),
        lambda c: reverse("funds_add"),
        derive=_cause_phrase,
    ),
    E.PROVIDER_BALANCE_LOW: EventKind(
        STAFF,
        "Provider {provider} is low on balance",
        "The balance at {provider} is {balance}, under {threshold}.",
        _admin_link("providers_provider_change", "provider_id"),
    ),
    E.PROVIDER_OUT_OF_FUNDS: EventKind(
        STAFF,
        "Provider {provider} is out of funds",
        "{provider} refused {refused} for lack of funds; orders wait until you top up.",
        lambda c: reverse("admin:orders_order_changelist") + "?status=waiting_funds",
    ),
    E.ORDER_NEEDS_REVIEW: EventKind(
        STAFF,
        "Orders need review",
        "Order {order_id} needs review: {reason}",
        lambda c: reverse("admin:orders_order_changelist") + "?status=needs_review",
        coalesce=True,
    ),
    E.PAYMENT_DISPUTED: EventKind(
        STAFF,
        "Payment #{payment_id} needs attention",
        "{reason}",
        _admin_link("accounts_payment_change", "payment_id"),
    ),
    E.TICKET_NEW: EventKind(
        STAFF,
        "New ticket #{ticket_id}: {subject}",
        "{customer} opened ticket #{ticket_id} “{subject}”.",
        _given_url,
    ),
}


class NotificationError(ValueError):
    """An unknown event, or a context that lacks what the event's title needs."""


def _plain(context: Mapping[str, Any] | None) -> dict[str, Any]:
    """The context as stored (JSON) and shown: amounts as the panel writes them ("$20.00"), in
    the panel's currency, or the one the context names (`currency`, or `provider_currency` for
    a provider's amounts)."""
    plain: dict[str, Any] = {"currency": settings.PANEL_CURRENCY}
    given = context or {}
    currency = given.get("provider_currency") or given.get("currency") or settings.PANEL_CURRENCY
    for key, value in given.items():
        if isinstance(value, Decimal):
            value = money_text(value, currency)
        elif not isinstance(value, str | int | float | bool | type(None)):
            value = str(value)
        plain[key] = value
    return plain


def _kind(event: str) -> EventKind:
    try:
        return EVENTS[event]
    except KeyError:
        raise NotificationError(f"Unknown notification event {event!r}.") from None


def _texts(kind: EventKind, event: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
    if kind.derive is not None:
        context = {**context, **kind.derive(context)}
    try:
        title = str(kind.title).format_map(context)
        message = str(kind.message).format_map(context)
        url = kind.link(context)
    except KeyError as exc:
        raise NotificationError(f"The {event} notification needs {exc.args[0]!r}.") from None
    return title[:200], message, url[:500]


# --- preferences -------------------------------------------------------------------------------


def events_for(user: User) -> list[str]:
    """The events a user may hear of: the customer's, and staff's too for staff."""
    audiences = {CUSTOMER, STAFF} if user.is_staff else {CUSTOMER}
    return [event for event, kind in EVENTS.items() if kind.audience in audiences]


def notification_preference_get(*, user: User) -> NotificationPreference:
    """The user's preferences; an unsaved default row when they never changed them."""
    pref = NotificationPreference.objects.filter(user=user).first()
    return pref or NotificationPreference(user=user)


def email_wanted(pref: NotificationPreference, event: str) -> bool:
    return bool(pref.email.get(event, _kind(event).email_default))


def notification_preference_set(
    *,
    user: User,
    email: Mapping[str, bool] | None = None,
    low_balance_threshold: Decimal | str | None = "",
) -> NotificationPreference:
    """Save the user's choices: `email` maps events to on/off (the others keep theirs), and a
    threshold given (None clears it; "" leaves it as it is)."""
    with transaction.atomic():
        pref, _ = NotificationPreference.objects.select_for_update().get_or_create(user=user)
        for event, wanted in (email or {}).items():
            _kind(event)
            pref.email[event] = bool(wanted)
        if low_balance_threshold != "":
            pref.low_balance_threshold = low_balance_threshold
        pref.updated_at = timezone.now()
        pref.full_clean()
        pref.save()
    return pref


# --- the one service ---------------------------------------------------------------------------


def notify(
    *,
    user: User,
    event: str,
    context: Mapping[str, Any] | None = None,
    dedupe_key: str = "",
    pref: NotificationPreference | None = None,
) -> Notification | None:
    """Tell `user` about `event`: write the notice now (in the caller's transaction) and queue
    its mail for after the commit if the user wants it. None when the same `dedupe_key` was
    told before, or when a coalescing staff event already has a fresh unread notice."""
    kind = _kind(event)
    with translation.override(settings.LANGUAGE_CODE):  # the stored context is plain data
        plain = _plain(context)
    with translation.override(user_language(user)):
        title, message, url = _texts(kind, event, plain)
    if kind.coalesce and _fresh_unread(user, event):
        return None
    pref = pref or notification_preference_get(user=user)
    mailed = bool(user.is_active and user.email and email_wanted(pref, event))
    notice = Notification(
        user=user,
        event=event,
        title=title,
        message=message,
        url=url,
        context=plain,
        dedupe_key=dedupe_key[:128],
        mail=Notification.Mail.QUEUED if mailed else Notification.Mail.NONE,
    )
    try:
        with transaction.atomic():  # a savepoint: a duplicate key must not break the caller's
            notice.save()
    except IntegrityError:
        if dedupe_key and Notification.objects.filter(user=user, dedupe_key=dedupe_key).exists():
            return None
        raise
    if mailed:
        transaction.on_commit(lambda: enqueue_notification_email(notice.pk))
    return notice


@dataclass(frozen=True)
class Notice:
    """One notice for notify_many: what notify's arguments say for one user."""

    user: User
    event: str
    context: Mapping[str, Any]
    dedupe_key: str = ""


def notify_many(*, notices: list[Notice]) -> list[Notification]:
    """notify() for many users at once (a status sweep's refunds): the preferences read in one
    query, the keys told before in one, the new notices written in one INSERT, in the caller's
    transaction, and their mails queued after its commit; returns the notices written.

    A notice whose `dedupe_key` its user was already told (before, or earlier in the list) is
    left out. Coalescing (staff) events are refused: they are told one by one, with notify().
    Two callers writing the same key at the same moment: the second one's transaction fails on
    the unique key and its retry finds the first notice."""
    kinds = [_kind(n.event) for n in notices]
    if any(kind.coalesce for kind in kinds):
        raise NotificationError("Coalescing events are told one by one, with notify().")
    if not notices:
        return []
    users = {n.user.pk for n in notices}
    prefs = {p.user_id: p for p in NotificationPreference.objects.filter(user_id__in=users)}
    keys = {n.dedupe_key[:128] for n in notices if n.dedupe_key}
    told = set(
        Notification.objects.filter(user_id__in=users, dedupe_key__in=keys).values_list(
            "user_id", "dedupe_key"
        )
        if keys
        else ()
    )
    written = []
    for notice, kind in zip(notices, kinds, strict=True):
        key = notice.dedupe_key[:128]
        if key and (notice.user.pk, key) in told:
            continue
        told.add((notice.user.pk, key))
        written.append(_notice(notice, kind, prefs.get(notice.user.pk)))
    Notification.objects.bulk_create(written)
    mailed = [n.pk for n in written if n.mail == Notification.Mail.QUEUED]

    def enqueue() -> None:
        for pk in mailed:
            enqueue_notification_email(pk)

    if mailed:
        transaction.on_commit(enqueue)
    return written


def _notice(notice: Notice, kind: EventKind, pref: NotificationPreference | None) -> Notification:
    """The unsaved Notification of one Notice (pref None: the user's defaults)."""
    user = notice.user
    plain = _plain(notice.context)
    title, message, url = _texts(kind, notice.event, plain)
    pref = pref or NotificationPreference(user=user)
    mailed = bool(user.is_active and user.email and email_wanted(pref, notice.event))
    return Notification(
        user=user,
        event=notice.event,
        title=title,
        message=message,
        url=url,
        context=plain,
        dedupe_key=notice.dedupe_key[:128],
        mail=Notification.Mail.QUEUED if mailed else Notification.Mail.NONE,
    )


def notify_if_balance_low(
    *, user: User, before: Decimal, after: Decimal, order_ref: int | None
) -> Notification | None:
    """After a debit: tell the customer when it took the balance from at or above their
    threshold to below it (`before` and `after` as the debit read them under the wallet's lock).
    Once per crossing: the next debit starts below, and only a top-up above the threshold makes
    a new crossing possible."""
    pref = NotificationPreference.objects.filter(user=user).first()
    threshold = pref.low_balance_threshold if pref is not None else None
    if pref is None or threshold is None or not (before >= threshold > after):
        return None
    return notify(
        user=user,
        event=E.BALANCE_LOW,
        context={
            "threshold": threshold,
            "balance": after,
            "cause": f"order {order_ref}" if order_ref is not None else "a debit",
            "order_ref": order_ref,
        },
        pref=pref,
    )


def _fresh_unread(user: User, event: str) -> bool:
    since = timezone.now() - COALESCE_WINDOW
    return Notification.objects.filter(
        user=user, event=event, read_at__isnull=True, created_at__gte=since
    ).exists()


def staff_recipients() -> QuerySet[User]:
    """Active staff: each gets the notice, and the mail if they have an address and want it."""
    return User.objects.filter(is_active=True, is_staff=True).order_by("pk")


def notify_staff(
    *, event: str, context: Mapping[str, Any] | None = None, dedupe_key: str = ""
) -> list[Notification]:
    """Tell every active member of staff about a staff event (each by their own preferences),
    and mail the settings.ADMINS addresses that belong to no active staff user: the operators'
    list (ADMIN_EMAILS) keeps getting the alerts it always got."""
    if _kind(event).audience != STAFF:
        raise NotificationError(f"{event} is not a staff event.")
    staff = list(staff_recipients())
    prefs = {p.user_id: p for p in NotificationPreference.objects.filter(user__in=staff)}
    notices = []
    for user in staff:
        pref = prefs.get(user.pk) or NotificationPreference(user=user)
        notice = notify(user=user, event=event, context=context, dedupe_key=dedupe_key, pref=pref)
        if notice is not None:
            notices.append(notice)
    known = {u.email.lower() for u in staff if u.email}
    others = sorted({a for _, a in settings.ADMINS if a and a.lower() not in known})
    if others and (notices if staff else _addresses_due(event)):
        plain = _plain(context)
        transaction.on_commit(lambda: enqueue_addresses_email(event, plain, others))
    return notices


def _addresses_due(event: str) -> bool:
    """With no staff user to hold an unread notice, a coalescing event is mailed to the ADMINS
    addresses at most once per COALESCE_WINDOW (counted in the shared cache)."""
    if not _kind(event).coalesce:
        return True
    return cache.add(f"notifications:admins:{event}", 1, int(COALESCE_WINDOW.total_seconds()))


# --- reads for the bell ------------------------------------------------------------------------


def notification_unread_count(*, user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def notification_list_for_user(*, user: User) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user).order_by("-id")


def notification_mark_read(*, user: User, notification_id: int) -> Notification | None:
    """Mark one of the user's notices read (None when it is not theirs)."""
    notice = Notification.objects.filter(user=user, pk=notification_id).first()
    if notice is not None and notice.read_at is None:
        notice.read_at = timezone.now()
        Notification.objects.filter(pk=notice.pk, read_at__isnull=True).update(
            read_at=notice.read_at
        )
    return notice


def notification_mark_all_read(*, user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).update(
        read_at=timezone.now()
    )


def notifications_prune(*, now: datetime | None = None) -> int | None:
    """Retention by the setting: delete the notices read more than PANEL_NOTIFICATION_DAYS
    ago; how many went, or None when the setting is 0 (every notice is kept)."""
    days = settings.PANEL_NOTIFICATION_DAYS
    if not days:
        return None
    return notification_delete_read_older_than(
        before=(now or timezone.now()) - timedelta(days=days)
    )


def notification_delete_read_older_than(*, before: datetime) -> int:
    """Delete the notices read before `before` (the cleanup_notifications command)."""
    deleted, _ = Notification.objects.filter(read_at__lt=before).delete()
    return deleted


# --- unsubscribe links -------------------------------------------------------------------------


def unsubscribe_token(*, user: User, event: str) -> str:
    return signing.dumps([user.pk, event], salt=UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_read(token: str) -> tuple[User, str] | None:
    """The user and event of a signed unsubscribe token, or None when it is not ours."""
    try:
        user_id, event = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except (signing.BadSignature, TypeError, ValueError):
        return None
    if event not in EVENTS:
        return None
    user = User.objects.filter(pk=user_id).first()
    return (user, event) if user is not None else None


def notification_unsubscribe(*, token: str) -> tuple[User, str] | None:
    """Turn off the mails of one event for the user the token names (no login needed)."""
    found = unsubscribe_read(token)
    if found is not None:
        notification_preference_set(user=found[0], email={found[1]: False})
    return found


# --- the mail ----------------------------------------------------------------------------------


def _absolute(path: str) -> str:
    if not path or path.startswith(("http://", "https://")):
        return path
    return settings.PANEL_PUBLIC_URL.rstrip("/") + path


def _message(
    *, event: str, context: Mapping[str, Any], to: list[str], user: User | None
) -> EmailMultiAlternatives:
    """The mail of one event, in the recipient's language (user_language)."""
    with translation.override(user_language(user)):
        return _message_in_language(event=event, context=context, to=to, user=user)


def _message_in_language(
    *, event: str, context: Mapping[str, Any], to: list[str], user: User | None
) -> EmailMultiAlternatives:
    kind = _kind(event)
    title, message, url = _texts(kind, event, context)
    values = {
        **context,
        **(kind.derive(context) if kind.derive is not None else {}),
        "has_bonus": _nonzero(context.get("bonus")),
        "title": title,
        "message": message,
        "link": _absolute(url),
        "user": user,
        "panel_name": settings.PANEL_NAME,
        "event_label": E(event).label,
        "preferences_url": _absolute(reverse("notification_settings")),
        "unsubscribe_url": "",
    }
    headers = {"Auto-Submitted": "auto-generated"}
    if user is not None:
        token = unsubscribe_token(user=user, event=event)
        values["unsubscribe_url"] = _absolute(reverse("notification_unsubscribe", args=[token]))
        headers["List-Unsubscribe"] = f"<{values['unsubscribe_url']}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    text = render_to_string(f"notifications/email/{event}.txt", values)
    html = render_to_string(f"notifications/email/{event}.html", values)
    prefix = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX or f"[{settings.PANEL_NAME}] "
    mail = EmailMultiAlternatives(prefix + title, text, None, to, headers=headers)
    mail.attach_alternative(html, "text/html")
    return mail


def notification_email_send(*, notification_id: int) -> bool:
    """Send a queued notice's mail (the Celery task calls it). True when sent now; False when
    it was sent before, or is no longer wanted. A send error propagates (the task retries)."""
    notice = Notification.objects.select_related("user").filter(pk=notification_id).first()
    if notice is None or notice.mail != Notification.Mail.QUEUED:
        return False
    user = notice.user
    if not (user.is_active and user.email):
        Notification.objects.filter(pk=notice.pk).update(mail=Notification.Mail.NONE)
        return False
    _message(event=notice.event, context=notice.context, to=[user.email], user=user).send()
    Notification.objects.filter(pk=notice.pk).update(
        mail=Notification.Mail.SENT, mailed_at=timezone.now()
    )
    return True


def notification_email_failed(*, notification_id: int, error: str) -> None:
    logger.error("notification %s: the mail could not be sent: %s", notification_id, error)
    Notification.objects.filter(pk=notification_id, mail=Notification.Mail.QUEUED).update(
        mail=Notification.Mail.FAILED
    )


def addresses_email_send(*, event: str, context: Mapping[str, Any], to: Iterable[str]) -> None:
    """Mail a staff event to addresses with no user (settings.ADMINS)."""
    _message(event=event, context=context, to=list(to), user=None).send()


def _tasks() -> ModuleType:
    # accounts.tasks imports this module (tasks are entry points that call services): it is
    # imported when the first mail is queued, the one place this module refers to it.
    from accounts import tasks

    return tasks


def enqueue_notification_email(notification_id: int) -> None:
    """Queue a notice's mail; never raises (the notice is committed and shows in the panel)."""
    try:
        _tasks().notification_email_send_task.delay(notification_id)
    except Exception:
        logger.exception("could not queue the mail of notification %s", notification_id)


def enqueue_addresses_email(event: str, context: dict[str, Any], to: list[str]) -> None:
    try:
        _tasks().notification_addresses_email_task.delay(event, context, to)
    except Exception:
        logger.exception("could not queue the %s mail to %s", event, ", ".join(to))
