"""Sign-up asks for the acceptance of the terms and records it (version, when, address); staff
see it on the customer's admin page."""

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts.models import User
from content.models import TermsAcceptance
from content.services import site_page_publish

pytestmark = pytest.mark.django_db

SIGNUP = {
    "username": "carol",
    "email": "carol@example.com",
    "password1": "a-long-Passphrase-9",
    "password2": "a-long-Passphrase-9",
}


@pytest.fixture(autouse=True)
def _fresh_limits():
    cache.clear()  # allauth's sign-up limit counts per address in the shared cache
    yield
    cache.clear()


def test_the_form_asks_for_the_terms_with_a_link():
    body = Client().get(reverse("account_signup")).content.decode()
    assert 'name="accept_terms"' in body and "required" in body
    assert body.index('name="password2"') < body.index('name="accept_terms"')  # the last field
    assert (
        f'<a href="{reverse("terms")}" target="_blank" rel="noopener">terms of service</a>' in body
    )


def test_signup_without_the_box_is_refused_at_the_field_keeping_what_was_typed():
    response = Client().post(reverse("account_signup"), SIGNUP)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Accept the terms of service to create an account." in body
    assert 'value="carol"' in body and 'value="carol@example.com"' in body
    assert not User.objects.filter(username="carol").exists()
    assert not TermsAcceptance.objects.exists()


def test_signup_records_the_version_when_and_address(staff):
    site_page_publish(slug="terms", title="Terms", body="one", by=staff)
    site_page_publish(slug="terms", title="Terms", body="two", by=staff)
    response = Client().post(
        reverse("account_signup"), {**SIGNUP, "accept_terms": "on"}, REMOTE_ADDR="203.0.113.9"
    )
    assert response.status_code == 302
    carol = User.objects.get(username="carol")
    [row] = TermsAcceptance.objects.filter(user=carol)
    assert (row.version, row.ip) == (2, "203.0.113.9") and row.accepted_at is not None
    # A later change of the terms asks nothing of her: it is only recorded at sign-up.
    site_page_publish(slug="terms", title="Terms", body="three", by=staff)
    assert TermsAcceptance.objects.filter(user=carol).count() == 1


def test_before_any_terms_are_published_the_default_is_version_0():
    Client().post(reverse("account_signup"), {**SIGNUP, "accept_terms": "on"})
    assert TermsAcceptance.objects.get().version == 0


def test_staff_see_the_acceptance_on_the_customer(admin_client, alice):
    TermsAcceptance.objects.create(user=alice, version=7, ip="198.51.100.4")
    body = admin_client.get(reverse("admin:accounts_user_change", args=[alice.pk])).content
    body = body.decode()
    assert "terms accepted" in body.lower()
    assert "<td class='num'>7</td>" in body and "<td>198.51.100.4</td>" in body
