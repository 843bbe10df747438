"""django-allauth in the panel: old URLs, users from before it, the staff's second factor, the
verified e-mail a deposit may need, and logging in with a code or a recovery code."""

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts.models import LoginEvent
from accounts.selectors import user_may_deposit
from tests.totp import give_second_factor, totp_code

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()  # used TOTP codes and rate limits live in the cache
    yield
    cache.clear()


# --- Today's URLs keep working ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/login/", "/accounts/login/"),
        ("/login/?next=/orders/", "/accounts/login/?next=/orders/"),
        ("/logout/", "/accounts/logout/"),
        ("/signup/", "/accounts/signup/"),
        ("/password-reset/", "/accounts/password/reset/"),
        ("/password-reset/sent/", "/accounts/password/reset/done/"),
        ("/password-reset/MQ/abc-123/", "/accounts/password/reset/"),
        ("/password-reset/done/", "/accounts/password/reset/key/done/"),
    ],
)
def test_the_old_auth_urls_redirect_to_allauths(client, old, new):
    response = client.get(old)
    assert response.status_code == 302 and response["Location"] == new
    assert client.get(new).status_code in (200, 302)  # anonymous logout goes on to log in


def test_a_post_to_an_old_url_stays_a_post(client, alice):
    response = client.post("/login/?next=/orders/", {"login": "alice", "password": "pw-alice-123"})
    assert response.status_code == 307 and response["Location"] == "/accounts/login/?next=/orders/"


def test_the_old_url_names_still_resolve():
    for name in ("login", "logout", "signup", "password_reset", "password_reset_done"):
        assert reverse(name)


# --- Users from before allauth (accounts/migrations/0005) --------------------------------------


@pytest.mark.django_db(transaction=True)
def test_users_from_before_allauth_log_in_by_username_and_by_email():
    from django.contrib.auth.hashers import make_password
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = (
        [("accounts", "0004_security_history_sessions_allowlist")],
        [("accounts", "0005_allauth_email_addresses")],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    OldUser = old_apps.get_model("accounts", "User")
    OldWallet = old_apps.get_model("accounts", "Wallet")
    # As the old sign-up made them: a usable password, active, an address and no EmailAddress.
    for name, email in [("olga", "Olga@Example.com"), ("oleg", ""), ("otto", "otto@example.com")]:
        user = OldUser.objects.create(
            username=name, email=email, password=make_password(f"pw-{name}-12345"), is_active=True
        )
        OldWallet.objects.create(user=user)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    olga = EmailAddress.objects.get(email="olga@example.com")
    assert olga.verified and olga.primary and olga.user.username == "olga"
    for login, password in [
        ("olga", "pw-olga-12345"),
        ("olga@example.com", "pw-olga-12345"),
        ("OLGA@example.com", "pw-olga-12345"),
        ("oleg", "pw-oleg-12345"),  # no address: by username, verification or not
        ("otto@example.com", "pw-otto-12345"),
    ]:
        client = Client()
        response = client.post(reverse("account_login"), {"login": login, "password": password})
        assert response.status_code == 302 and response["Location"] == "/", login
        assert client.get(reverse("orders")).status_code == 200


def test_under_mandatory_verification_migrated_and_addressless_users_log_in(
    client, settings, alice
):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    from accounts.services import customer_create

    customer_create(username="noaddress", password="pw-noaddress-1")
    for login, password in [("alice", "pw-alice-123"), ("noaddress", "pw-noaddress-1")]:
        response = Client().post(reverse("account_login"), {"login": login, "password": password})
        assert response.status_code == 302 and response["Location"] == "/", login


def test_under_mandatory_verification_an_unverified_signup_waits_for_the_link(settings):
    from django.core import mail

    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    client = Client()
    form = {"username": "vera", "email": "vera@example.com"}
    form |= {"password1": "a-long-Passphrase-9", "password2": "a-long-Passphrase-9"}
    form |= {"accept_terms": "on"}
    response = client.post(reverse("account_signup"), form)
    assert response["Location"] == reverse("account_email_verification_sent")
    assert client.get(reverse("orders")).status_code == 302  # not signed in
    [message] = mail.outbox
    assert message.to == ["vera@example.com"]


# --- A deposit may need a verified address ---------------------------------------------------


def test_user_may_deposit_follows_the_setting(settings, alice):
    from accounts.services import customer_create

    fresh = customer_create(username="fresh", password="pw-fresh-12345")
    EmailAddress.objects.create(user=fresh, email="fresh@example.com", primary=True)
    settings.PANEL_REQUIRE_VERIFIED_EMAIL_FOR_DEPOSIT = True
    assert user_may_deposit(user=alice) is True  # created by customer_create: verified
    assert user_may_deposit(user=fresh) is False
    settings.PANEL_REQUIRE_VERIFIED_EMAIL_FOR_DEPOSIT = False
    assert user_may_deposit(user=fresh) is True


# --- Staff need a second factor for the admin --------------------------------------------------


def test_staff_without_a_second_factor_are_sent_to_set_one_up(client, django_user_model):
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-12345")
    client.force_login(boss)
    for path in ("/admin/", "/admin/accounts/user/", "/admin/pricing/bulk/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"] == reverse("mfa_activate_totp")
    # Setting up a factor asks for the password again (allauth's reauthentication).
    asked = client.get(reverse("mfa_activate_totp"))
    assert asked["Location"].startswith(reverse("account_reauthenticate"))
    client.post(reverse("account_reauthenticate"), {"password": "pw-boss-12345"})
    # The setup page: activate with the code the app shows for the secret on it.
    page = client.get(reverse("mfa_activate_totp"))
    assert "Staff need a second factor" in page.content.decode()
    secret = page.context["form"].secret
    wrong = client.post(reverse("mfa_activate_totp"), {"code": "000000"})
    assert wrong.status_code == 200 and "id_code_error" in wrong.content.decode()
    assert not Authenticator.objects.filter(user=boss).exists()
    done = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert done.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_customers_never_meet_the_admin_two_factor_redirect(client, alice):
    alice_client = client
    alice_client.force_login(alice)
    assert alice_client.get(reverse("orders")).status_code == 200
    assert alice_client.get("/admin/").status_code == 302
    assert alice_client.get("/admin/")["Location"].startswith(reverse("admin:login"))


def test_the_demo_admin_may_be_exempt_with_debug_only_and_the_admin_says_so(
    client, settings, django_user_model
):
    admin = django_user_model.objects.create_superuser("admin", "a@example.com", "pw-admin-12345")
    client.force_login(admin)
    settings.PANEL_ADMIN_2FA_EXEMPT = ["admin"]
    settings.DEBUG = False
    assert client.get("/admin/").status_code == 302
    settings.DEBUG = True
    page = client.get("/admin/")
    assert page.status_code == 200
    assert "without a second factor" in page.content.decode()


def test_the_banner_is_not_shown_to_staff_with_a_second_factor(admin_client):
    page = admin_client.get("/admin/")
    assert page.status_code == 200 and "without a second factor" not in page.content.decode()


# --- Logging in with a second factor ---------------------------------------------------------


def _password_step(client, login="alice", password="pw-alice-123"):
    response = client.post(reverse("account_login"), {"login": login, "password": password})
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    assert client.get(reverse("orders")).status_code == 302  # not signed in yet


def test_login_with_totp_asks_for_the_code_after_the_password(client, alice):
    secret = give_second_factor(alice)
    _password_step(client)
    wrong = client.post(reverse("mfa_authenticate"), {"code": "123456"})
    assert wrong.status_code == 200 and "id_code_error" in wrong.content.decode()
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert response.status_code == 302
    assert client.get(reverse("orders")).status_code == 200
    # The Security page's history says which second factor was used.
    event = LoginEvent.objects.filter(user=alice, success=True).latest("id")
    assert event.second_factor == "totp"


def test_a_recovery_code_works_once(alice):
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    give_second_factor(alice)
    code = RecoveryCodes.activate(alice).get_unused_codes()[0]
    first = Client()
    _password_step(first)
    assert first.post(reverse("mfa_authenticate"), {"code": code}).status_code == 302
    assert first.get(reverse("orders")).status_code == 200
    event = LoginEvent.objects.filter(user=alice, success=True).latest("id")
    assert event.second_factor == "recovery_codes"
    second = Client()
    _password_step(second)
    refused = second.post(reverse("mfa_authenticate"), {"code": code})
    assert refused.status_code == 200 and "id_code_error" in refused.content.decode()
    assert second.get(reverse("orders")).status_code == 302
