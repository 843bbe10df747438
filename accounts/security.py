"""Login history, signed-in sessions and the new-address notice.

Everything here hangs off Django's own auth signals (user_logged_in, user_login_failed,
user_logged_out), which django-allauth fires too, and off the session framework, so it works
whichever views do the logging in. The receivers are connected in AccountsConfig.ready(): a
login record is a side record, not part of our money or order flow.
"""

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone, translation

from accounts.audit import audit_record
from accounts.models import AdminAuditLog, LoginEvent, User, UserSession
from accounts.notifications import user_language
from accounts.ratelimit import client_ip

logger = logging.getLogger(__name__)

LOGIN_HISTORY_SHOWN = 20
USER_AGENT_LENGTH = 255
IDENTIFIER_LENGTH = 150
# The session entry where allauth records how this session authenticated
# (allauth.account.internal.flows.login.AUTHENTICATION_METHODS_SESSION_KEY).
ALLAUTH_METHODS_SESSION_KEY = "account_authentication_methods"
ALLAUTH_METHODS_USER_SESSION_KEY = "account_authentication_methods_user"
# Our own entry: when the session started (kept across a key change, e.g. a password change).
SESSION_STARTED_KEY = "_panel_session_started"
SESSION_SEEN_KEY = "_panel_session_seen"


def _request_ip(request: HttpRequest | None) -> str | None:
    return client_ip(request) if request is not None else None


def _request_agent(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return str(request.META.get("HTTP_USER_AGENT", ""))[:USER_AGENT_LENGTH]


def second_factor_from_session(
    session: Mapping[str, Any] | None, *, user: User | None = None
) -> str:
    """The second factor this session's login used, read from allauth's authentication records:
    "totp", "recovery_codes", "webauthn", or "" (none, no allauth, or records we do not know).
    Read defensively: the records are allauth's internals, stored in a session anyone's code
    may have written. Records allauth kept for another user (an abandoned attempt before this
    login) do not count."""
    if session is None:
        return ""
    try:
        records = session.get(ALLAUTH_METHODS_SESSION_KEY)
        owner = session.get(ALLAUTH_METHODS_USER_SESSION_KEY)
    except Exception:  # a session store that cannot be read must not break the login
        return ""
    if user is not None and owner is not None and str(owner) != str(user.pk):
        return ""
    if not isinstance(records, list):
        return ""
    known = set(LoginEvent.SecondFactor.values) - {""}
    for record in reversed(records):  # the newest factor counts
        if isinstance(record, dict) and record.get("method") == "mfa":
            kind = record.get("type")
            return kind if isinstance(kind, str) and kind in known else ""
    return ""


# --- Login history ---------------------------------------------------------------------------


def login_event_record_success(*, user: User, request: HttpRequest | None) -> LoginEvent:
    """Record a successful login and, from an address this user never logged in from before
    (and not on their very first login), mail them after the transaction commits."""
    ip = _request_ip(request)
    session = getattr(request, "session", None)
    earlier = LoginEvent.objects.filter(user=user, success=True)
    is_new_address = ip is not None and earlier.exists() and not earlier.filter(ip=ip).exists()
    event = LoginEvent.objects.create(
        user=user,
        identifier=user.get_username()[:IDENTIFIER_LENGTH],
        ip=ip,
        user_agent=_request_agent(request),
        success=True,
        second_factor=second_factor_from_session(session, user=user),
    )
    if is_new_address and user.email and getattr(settings, "PANEL_NEW_LOGIN_EMAIL", True):
        transaction.on_commit(lambda: _notify_new_address(event=event, user=user))
    return event


def login_event_record_failure(
    *, credentials: Mapping[str, Any], request: HttpRequest | None
) -> LoginEvent:
    """Record a refused login. The user is attached when the name tried is theirs (so they see
    it on their Security page); the answer to the client is the same either way, this runs
    after it is decided."""
    identifier = ""
    for name in ("username", "login", "email"):
        value = credentials.get(name)
        if isinstance(value, str) and value:
            identifier = value.strip()[:IDENTIFIER_LENGTH]
            break
    return LoginEvent.objects.create(
        user=_user_for_identifier(identifier),
        identifier=identifier.replace("\x00", ""),
        ip=_request_ip(request),
        user_agent=_request_agent(request),
        success=False,
    )


def _user_for_identifier(identifier: str) -> User | None:
    if not identifier or "\x00" in identifier:
        return None
    user = User.objects.filter(username=identifier).first()
    if user is None and "@" in identifier:
        matches = list(User.objects.filter(email__iexact=identifier)[:2])
        user = matches[0] if len(matches) == 1 else None  # a shared address names no one
    return user


def login_event_list_for_user(*, user: User) -> QuerySet[LoginEvent]:
    return LoginEvent.objects.filter(user=user).order_by("-at", "-id")


def login_event_delete_older_than(*, before: datetime) -> int:
    """Retention: delete the history older than `before`; returns how many rows went."""
    deleted, _ = LoginEvent.objects.filter(at__lt=before).delete()
    return deleted


def login_history_prune(*, now: datetime | None = None) -> int | None:
    """Retention by the setting: delete the login history older than PANEL_LOGIN_HISTORY_DAYS;
    returns how many rows went, or None when the setting is 0 (the whole history is kept)."""
    days = settings.PANEL_LOGIN_HISTORY_DAYS
    if not days:
        return None
    return login_event_delete_older_than(before=(now or timezone.now()) - timedelta(days=days))


def _notify_new_address(*, event: LoginEvent, user: User) -> None:
    context = {
        "user": user,
        "event": event,
        "panel_name": settings.PANEL_NAME,
        "panel_url": settings.PANEL_PUBLIC_URL.rstrip("/"),
        "when": event.at.strftime("%Y-%m-%d %H:%M UTC"),
    }
    with translation.override(user_language(user)):  # the account's language, not the page's
        subject = render_to_string("accounts/email/new_login_subject.txt", context)
        body = render_to_string("accounts/email/new_login_body.txt", context)
    if not send_mail(" ".join(subject.split()), body, None, [user.email], fail_silently=True):
        logger.warning("user %s: the new-address login notice failed", user.pk)


# --- Sessions ----------------------------------------------------------------------------------


def _session_store(session_key: str) -> SessionBase:
    engine = import_module(settings.SESSION_ENGINE)
    return engine.SessionStore(session_key=session_key)


def user_session_record(
    *, user: User, request: HttpRequest, started: datetime | None = None
) -> UserSession | None:
    """Create or refresh the row of the request's session (after a login, or when a session's
    key changed). None when the session has no key (a store that keeps none server-side)."""
    session = request.session
    key = session.session_key
    if not key:
        return None
    now = timezone.now()
    started = started or now
    session[SESSION_STARTED_KEY] = started.timestamp()
    session[SESSION_SEEN_KEY] = now.timestamp()
    row, _ = UserSession.objects.update_or_create(
        session_key=key,
        defaults={
            "user": user,
            "ip": _request_ip(request),
            "user_agent": _request_agent(request),
            "last_seen_at": now,
        },
        create_defaults={
            "user": user,
            "ip": _request_ip(request),
            "user_agent": _request_agent(request),
            "created_at": started,
            "last_seen_at": now,
        },
    )
    return row


def session_activity_record(
    *, user: User, request: HttpRequest, key_changed: bool, interval: float
) -> None:
    """Called by SessionActivityMiddleware after each signed-in request. A key changed during
    the request gets its row (with the session's own start time); otherwise the row's last
    seen time and address are refreshed when the last refresh is older than `interval`
    seconds, and recreated if missing (a session from before the list existed)."""
    session = request.session
    now = time.time()
    started_ts = session.get(SESSION_STARTED_KEY)
    started = (
        datetime.fromtimestamp(started_ts, tz=UTC) if isinstance(started_ts, int | float) else None
    )
    seen = session.get(SESSION_SEEN_KEY)
    if not key_changed and isinstance(seen, int | float) and now - seen < interval:
        return
    if key_changed:
        user_session_record(user=user, request=request, started=started)
        return
    updated = UserSession.objects.filter(session_key=session.session_key, user=user).update(
        last_seen_at=timezone.now(), ip=_request_ip(request), user_agent=_request_agent(request)
    )
    if updated:
        session[SESSION_SEEN_KEY] = now
    else:
        user_session_record(user=user, request=request, started=started)


def user_session_list_for_user(*, user: User, now: datetime | None = None) -> QuerySet[UserSession]:
    """The user's sessions seen within the session lifetime (older ones have expired)."""
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.SESSION_COOKIE_AGE)
    return UserSession.objects.filter(user=user, last_seen_at__gte=since).order_by(
        "-last_seen_at", "-id"
    )


def user_session_end(*, user: User, session_id: int) -> bool:
    """End one of the user's sessions (another user's id ends nothing). True if one ended."""
    row = UserSession.objects.filter(user=user, pk=session_id).first()
    if row is None:
        return False
    _session_store(row.session_key).delete()
    row.delete()
    return True


def user_sessions_end_by_staff(*, who: User, session_ids: list[int]) -> int:
    """Staff end customers' sessions (a stolen cookie, a shared computer): each is deleted from
    the session store and audited under Customer access. Returns how many ended."""
    ended = 0
    with transaction.atomic():
        rows = UserSession.objects.select_for_update().filter(pk__in=session_ids)
        for row in rows.select_related("user"):
            _session_store(row.session_key).delete()
            audit_record(
                actor=who,
                action="end session",
                obj=row.user,
                summary=f"Ended a session of {row.user} from {row.ip or 'an unknown address'} "
                f"(last seen {row.last_seen_at:%Y-%m-%d %H:%M} UTC).",
                area=AdminAuditLog.Area.ACCESS,
            )
            row.delete()
            ended += 1
    return ended


def user_sessions_end(*, user: User, keep_session_key: str | None = None) -> int:
    """End every session of `user` but the one keyed `keep_session_key`: delete each from the
    session store (whatever SESSION_ENGINE is in use) and forget its row. Returns how many.
    Sessions of the signed-cookie engine live only in the browser and cannot be ended here
    (Django's session auth hash still ends them at a password change)."""
    rows = UserSession.objects.filter(user=user)
    if keep_session_key:
        rows = rows.exclude(session_key=keep_session_key)
    keys = list(rows.values_list("session_key", flat=True))
    for key in keys:
        _session_store(key).delete()
    UserSession.objects.filter(session_key__in=keys).delete()
    return len(keys)


# --- The receivers (connected in AccountsConfig.ready) -----------------------------------------


def on_user_logged_in(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    login_event_record_success(user=user, request=request)
    if request is not None and hasattr(request, "session"):
        user_session_record(user=user, request=request)


def on_user_login_failed(
    sender: Any, credentials: Mapping[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    login_event_record_failure(credentials=credentials, request=request)


def on_user_logged_out(
    sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any
) -> None:
    # Called before the session is flushed: its key is still the one on the row.
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        UserSession.objects.filter(session_key=key).delete()


def on_user_saved(sender: Any, instance: User, created: bool, **kwargs: Any) -> None:
    """A changed password ends every session of the user, whichever view changed it (our
    settings page, allauth's change or reset, the admin, manage.py changepassword).

    AbstractBaseUser.set_password() keeps the new raw password in `_password` until save()
    has written it (it then tells the password validators), so a post_save that finds it set is
    a save that changed the password. The session that changed it is ended too, and lives on:
    update_session_auth_hash() gives it a new key, which SessionActivityMiddleware records."""
    if created or getattr(instance, "_password", None) is None:
        return
    user_sessions_end(user=instance)
