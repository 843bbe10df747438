"""Login history, the new-address mail and the session list (accounts/security.py), driven
through Django's own authenticate() and login(): the signals django-allauth sends too."""

import time
from datetime import timedelta

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, authenticate, login
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.middleware import SessionMiddleware
from django.core import mail
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import LoginEvent, UserSession
from accounts.security import (
    ALLAUTH_METHODS_SESSION_KEY,
    ALLAUTH_METHODS_USER_SESSION_KEY,
    SESSION_SEEN_KEY,
    second_factor_from_session,
    user_sessions_end,
)
from accounts.templatetags.panel_ui import browser_summary

pytestmark = pytest.mark.django_db

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def _request(ip: str = "198.51.100.7", agent: str = FIREFOX, session_data: dict | None = None):
    request = RequestFactory().post("/login/", REMOTE_ADDR=ip, HTTP_USER_AGENT=agent)
    SessionMiddleware(lambda r: None).process_request(request)
    for name, value in (session_data or {}).items():
        request.session[name] = value
    return request


def log_in(username: str, password: str, **kwargs):
    """Authenticate and log in as any login view does (Django's or allauth's); the request."""
    request = _request(**kwargs)
    user = authenticate(request, username=username, password=password)
    if user is not None:
        login(request, user)
        request.session.save()
    return request


def test_a_login_records_time_address_agent_and_its_session(alice):
    before = timezone.now()
    request = log_in("alice", "pw-alice-123")
    event = LoginEvent.objects.get()
    assert (event.user, event.identifier, event.success) == (alice, "alice", True)
    assert (event.ip, event.user_agent, event.second_factor) == ("198.51.100.7", FIREFOX, "")
    assert event.at >= before
    session = UserSession.objects.get()
    assert session.user == alice
    assert session.session_key == request.session.session_key
    assert (session.ip, session.user_agent) == ("198.51.100.7", FIREFOX)


def test_a_refused_login_is_recorded_for_the_account_it_named(alice):
    log_in("alice", "wrong", ip="203.0.113.5", agent="curl/8.5")
    event = LoginEvent.objects.get()
    assert (event.user, event.identifier, event.success) == (alice, "alice", False)
    assert (event.ip, event.user_agent) == ("203.0.113.5", "curl/8.5")
    assert not UserSession.objects.exists()


def test_a_refused_login_for_no_account_keeps_the_name_tried_and_no_user(alice):
    log_in("mallory" * 40, "whatever")
    event = LoginEvent.objects.get()
    assert event.user is None
    assert event.identifier == ("mallory" * 40)[:150]
    assert not event.success


def test_a_long_user_agent_is_cut(alice):
    log_in("alice", "pw-alice-123", agent="A" * 2000)
    assert LoginEvent.objects.get().user_agent == "A" * 255


def test_second_factor_is_read_from_allauths_records_in_the_session(alice, bob):
    records = [
        {"method": "password", "at": time.time(), "username": "alice"},
        {"method": "mfa", "at": time.time(), "id": 3, "type": "recovery_codes"},
    ]
    data = {ALLAUTH_METHODS_SESSION_KEY: records, ALLAUTH_METHODS_USER_SESSION_KEY: str(alice.pk)}
    log_in("alice", "pw-alice-123", session_data=data)
    assert LoginEvent.objects.get().second_factor == "recovery_codes"
    # Records allauth kept for someone else (alice gave up at the code) are not bob's factor.
    log_in("bob", "pw-bob-123", session_data=data)
    assert LoginEvent.objects.get(user=bob).second_factor == ""


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        (None, ""),
        ({}, ""),
        ({ALLAUTH_METHODS_SESSION_KEY: "totp"}, ""),
        ({ALLAUTH_METHODS_SESSION_KEY: [{"method": "password"}]}, ""),
        ({ALLAUTH_METHODS_SESSION_KEY: [{"method": "mfa", "type": "totp"}]}, "totp"),
        ({ALLAUTH_METHODS_SESSION_KEY: [{"method": "mfa", "type": "webauthn"}]}, "webauthn"),
        ({ALLAUTH_METHODS_SESSION_KEY: [{"method": "mfa", "type": "sms"}]}, ""),
        ({ALLAUTH_METHODS_SESSION_KEY: [{"method": "mfa"}, "junk", 7]}, ""),
        (
            {
                ALLAUTH_METHODS_SESSION_KEY: [
                    {"method": "mfa", "type": "totp"},
                    {"method": "mfa", "type": "webauthn"},
                ]
            },
            "webauthn",
        ),
    ],
)
def test_second_factor_from_session_reads_defensively(session, expected):
    assert second_factor_from_session(session) == expected


# --- The new-address mail -----------------------------------------------------------------------


def test_new_address_mail_is_sent_once_and_never_for_the_first_login(
    alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        log_in("alice", "pw-alice-123", ip="198.51.100.7")  # the first login ever
        log_in("alice", "pw-alice-123", ip="198.51.100.7")  # a known address
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        log_in("alice", "pw-alice-123", ip="203.0.113.9")  # new
        log_in("alice", "pw-alice-123", ip="203.0.113.9")  # known from now on
        log_in("alice", "wrong", ip="192.0.2.1")  # refused: no mail
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"]
    assert "203.0.113.9" in message.body
    assert "Firefox" in message.body
    assert "/account/security/" in message.body


def test_new_address_mail_follows_the_setting(alice, settings, django_capture_on_commit_callbacks):
    settings.PANEL_NEW_LOGIN_EMAIL = False
    with django_capture_on_commit_callbacks(execute=True):
        log_in("alice", "pw-alice-123", ip="198.51.100.7")
        log_in("alice", "pw-alice-123", ip="203.0.113.9")
    assert mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_new_address_mail_is_not_sent_when_the_transaction_rolls_back(alice):
    log_in("alice", "pw-alice-123", ip="198.51.100.7")
    with pytest.raises(RuntimeError), transaction.atomic():
        log_in("alice", "pw-alice-123", ip="203.0.113.9")
        raise RuntimeError("the login's transaction fails")
    assert mail.outbox == []
    assert LoginEvent.objects.filter(ip="203.0.113.9").count() == 0
    log_in("alice", "pw-alice-123", ip="203.0.113.9")  # committed this time
    assert len(mail.outbox) == 1


# --- Sessions -----------------------------------------------------------------------------------


def _logged_in_client(username: str, password: str, ip: str) -> Client:
    client = Client(REMOTE_ADDR=ip, HTTP_USER_AGENT=f"Browser at {ip}")
    assert client.login(username=username, password=password)
    return client


def _is_logged_in(client: Client) -> bool:
    return client.get(reverse("account_security")).status_code == 200


def test_security_page_lists_own_sessions_and_history_with_this_device_marked(alice, bob):
    first = _logged_in_client("alice", "pw-alice-123", "198.51.100.7")
    _logged_in_client("alice", "pw-alice-123", "198.51.100.8")
    _logged_in_client("bob", "pw-bob-123", "198.51.100.9")
    response = first.get(reverse("account_security"))
    assert response.status_code == 200
    sessions = list(response.context["sessions"])
    assert {s.user for s in sessions} == {alice}
    assert len(sessions) == 2
    assert response.context["current_key"] == first.session.session_key
    body = response.content.decode()
    assert body.count('data-testid="this-device"') == 1
    assert body.count("End session") == 1
    assert "Log out everywhere else" in body
    assert {e.user for e in response.context["events"]} == {alice}


def test_security_page_shows_the_last_20_logins(alice):
    now = timezone.now()
    LoginEvent.objects.bulk_create(
        LoginEvent(user=alice, identifier="alice", success=i % 2 == 0, at=now - timedelta(hours=i))
        for i in range(30)
    )
    client = Client()
    client.force_login(alice)
    events = list(client.get(reverse("account_security")).context["events"])
    assert len(events) == 20
    assert events[0].at > events[-1].at


def test_log_out_everywhere_else_ends_the_other_sessions_only(alice, bob):
    first = _logged_in_client("alice", "pw-alice-123", "198.51.100.7")
    second = _logged_in_client("alice", "pw-alice-123", "198.51.100.8")
    third = _logged_in_client("alice", "pw-alice-123", "198.51.100.9")
    bobs = _logged_in_client("bob", "pw-bob-123", "198.51.100.10")
    assert first.get(reverse("account_sessions_end_others")).status_code == 405
    response = first.post(reverse("account_sessions_end_others"), follow=True)
    assert "2 other sessions ended" in response.content.decode()
    assert _is_logged_in(first) and _is_logged_in(bobs)
    assert not _is_logged_in(second) and not _is_logged_in(third)
    assert list(UserSession.objects.filter(user=alice).values_list("session_key", flat=True)) == [
        first.session.session_key
    ]


def test_ending_one_session_needs_post_and_only_ends_ones_own(alice, bob):
    first = _logged_in_client("alice", "pw-alice-123", "198.51.100.7")
    second = _logged_in_client("alice", "pw-alice-123", "198.51.100.8")
    bobs = _logged_in_client("bob", "pw-bob-123", "198.51.100.10")
    bob_row = UserSession.objects.get(user=bob)
    second_row = UserSession.objects.get(session_key=second.session.session_key)
    first.post(reverse("account_session_end", args=[bob_row.pk]))
    assert _is_logged_in(bobs)
    mine = UserSession.objects.get(session_key=first.session.session_key)
    first.post(reverse("account_session_end", args=[mine.pk]))  # "this device": refused
    assert _is_logged_in(first)
    first.post(reverse("account_session_end", args=[second_row.pk]))
    assert not _is_logged_in(second)
    assert _is_logged_in(first)


def test_logging_out_forgets_the_session(alice):
    client = _logged_in_client("alice", "pw-alice-123", "198.51.100.7")
    assert UserSession.objects.count() == 1
    client.post(reverse("account_logout"))
    assert UserSession.objects.count() == 0


def test_password_change_on_allauths_page_ends_the_other_sessions(alice):
    first = _logged_in_client("alice", "pw-alice-123", "198.51.100.7")
    second = _logged_in_client("alice", "pw-alice-123", "198.51.100.8")
    started = UserSession.objects.get(session_key=first.session.session_key).created_at
    response = first.post(
        reverse("account_change_password"),
        {
            "oldpassword": "pw-alice-123",
            "password1": "a-new-Secret-991",
            "password2": "a-new-Secret-991",
        },
    )
    assert response.status_code == 302
    assert _is_logged_in(first)
    assert not _is_logged_in(second)
    # The other session is gone from the store, not only refused by its stale auth hash.
    assert not SessionStore().exists(second.session.session_key)
    row = UserSession.objects.get(user=alice)  # only this device, under its new key
    assert row.session_key == first.session.session_key
    assert row.created_at == started


def test_a_password_saved_anywhere_ends_every_session(alice):
    client = _logged_in_client("alice", "pw-alice-123", "198.51.100.7")
    key = client.session.session_key
    alice.email = "new@example.com"
    alice.save()  # no password change: nothing ends
    assert _is_logged_in(client)
    alice.set_password("reset-by-Staff-7")
    alice.save()
    assert not SessionStore().exists(key)
    assert not UserSession.objects.exists()


def test_user_sessions_end_keeps_the_given_session(alice):
    first = _logged_in_client("alice", "pw-alice-123", "198.51.100.7")
    _logged_in_client("alice", "pw-alice-123", "198.51.100.8")
    assert user_sessions_end(user=alice, keep_session_key=first.session.session_key) == 1
    assert user_sessions_end(user=alice, keep_session_key=first.session.session_key) == 0
    assert _is_logged_in(first)
    assert user_sessions_end(user=alice) == 1
    assert not _is_logged_in(first)


def test_last_seen_is_written_at_most_once_per_interval(alice, settings):
    settings.PANEL_SESSION_SEEN_SECONDS = 300
    client = _logged_in_client("alice", "pw-alice-123", "198.51.100.7")
    long_ago = timezone.now() - timedelta(days=1)
    UserSession.objects.update(last_seen_at=long_ago)
    client.get(reverse("account_security"))  # seen at login, a moment ago: no write
    assert UserSession.objects.get().last_seen_at == long_ago
    session = client.session
    session[SESSION_SEEN_KEY] = time.time() - 301
    session.save()
    client.get(reverse("account_security"), REMOTE_ADDR="198.51.100.99")
    row = UserSession.objects.get()
    assert row.last_seen_at > long_ago
    assert row.ip == "198.51.100.99"


def test_a_session_from_before_the_list_is_recorded_on_its_next_request(alice):
    client = Client(REMOTE_ADDR="198.51.100.7")
    client.force_login(alice)
    UserSession.objects.all().delete()
    session = client.session
    del session[SESSION_SEEN_KEY]
    session.save()
    client.get(reverse("account_security"))
    assert UserSession.objects.get().session_key == client.session.session_key


def test_sessions_are_kept_by_the_backend_set_in_settings(alice, settings):
    # The default database backend; ending a session deletes its django_session row.
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.db"
    client = _logged_in_client("alice", "pw-alice-123", "198.51.100.7")
    assert client.session[BACKEND_SESSION_KEY]
    assert user_sessions_end(user=alice) == 1
    assert not SessionStore().exists(client.session.session_key)


# --- Admin and retention ------------------------------------------------------------------------


def test_admin_lists_the_login_history_read_only_with_filters(client, staff, alice):
    log_in("alice", "pw-alice-123", ip="198.51.100.7")
    log_in("nobody", "x", ip="203.0.113.5")
    client.force_login(staff)
    url = reverse("admin:accounts_loginevent_changelist")
    body = client.get(url, {"success__exact": "0"}).content.decode()
    assert "nobody" in body and "198.51.100.7" not in body
    body = client.get(url, {"q": "198.51.100.7"}).content.decode()
    assert "198.51.100.7" in body
    event = LoginEvent.objects.filter(success=True, user=alice).first()
    change = client.get(reverse("admin:accounts_loginevent_change", args=[event.pk]))
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()
    assert client.get(reverse("admin:accounts_loginevent_add")).status_code == 403


def test_cleanup_login_history_deletes_what_is_older_than_the_setting(alice, settings):
    settings.PANEL_LOGIN_HISTORY_DAYS = 30
    now = timezone.now()
    old = LoginEvent.objects.create(user=alice, success=True, at=now - timedelta(days=31))
    recent = LoginEvent.objects.create(user=alice, success=True, at=now - timedelta(days=29))
    call_command("cleanup_login_history", verbosity=0)
    assert not LoginEvent.objects.filter(pk=old.pk).exists()
    assert LoginEvent.objects.filter(pk=recent.pk).exists()


@pytest.mark.parametrize(
    ("agent", "summary"),
    [
        (FIREFOX, "Firefox on Linux"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari on iOS",
        ),
        ("curl/8.5.0", "curl"),
        ("", "Unknown browser"),
        ("x" * 100, "x" * 60),
    ],
)
def test_the_security_page_names_browsers_briefly(agent, summary):
    assert browser_summary(agent) == summary


def test_recording_a_refusal_costs_the_same_whether_the_account_exists(alice):
    """The same queries for a wrong password and an unknown name: the record says nothing
    about which it was to anyone timing the answer."""
    counts = []
    for username in ("alice", "nobody"):
        with CaptureQueriesContext(connection) as queries:
            log_in(username, "wrong")
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert LoginEvent.objects.filter(success=False).count() == 2


def test_the_nightly_sweep_prunes_the_login_history_and_keeps_it_all_at_zero(alice, settings):
    from accounts.tasks import login_history_cleanup_sweep

    now = timezone.now()
    old = LoginEvent.objects.create(user=alice, success=True, at=now - timedelta(days=400))
    settings.PANEL_LOGIN_HISTORY_DAYS = 0
    assert login_history_cleanup_sweep() == "history kept (setting 0)"
    assert LoginEvent.objects.filter(pk=old.pk).exists()
    settings.PANEL_LOGIN_HISTORY_DAYS = 365
    assert login_history_cleanup_sweep() == "deleted 1"
    assert not LoginEvent.objects.filter(pk=old.pk).exists()


def test_staff_end_a_customers_session_in_admin_and_it_is_audited(client, staff, alice):
    from accounts.models import AdminAuditLog

    request = log_in("alice", "pw-alice-123", ip="198.51.100.7")
    row = UserSession.objects.get(user=alice)
    client.force_login(staff)
    url = reverse("admin:accounts_usersession_changelist")
    page = client.get(url).content.decode()
    assert "198.51.100.7" in page and row.session_key not in page
    assert client.get(reverse("admin:accounts_usersession_add")).status_code == 403
    done = client.post(url, {"action": "end_sessions", "_selected_action": [row.pk]}, follow=True)
    assert "1 session(s) ended." in done.content.decode()
    assert not UserSession.objects.filter(pk=row.pk).exists()
    assert not SessionStore().exists(request.session.session_key)
    audit = AdminAuditLog.objects.get(action="end session")
    assert (audit.actor, audit.object_id, audit.area) == (staff, str(alice.pk), "access")
    assert "198.51.100.7" in audit.summary
