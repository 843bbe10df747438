"""The API page's webhook section: set the URL (checked at the field), the secret shown once,
rotate, a test event delivered over real HTTP, the delivery log, remove; the admin's retry."""

import pytest
from django.urls import reverse

from orders.models import WebhookEndpoint, WebhookEvent
from orders.services.webhooks import signature_verify
from providers.crypto import decrypt
from tests.orders.test_webhooks import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def test_an_http_url_is_refused_at_the_field_and_kept(alice_client, settings):
    settings.DEBUG = False
    settings.PANEL_WEBHOOKS_ALLOW_PRIVATE = False
    typed = "http://example.com/hook"
    response = alice_client.post(reverse("api_webhook_set"), {"url": typed, "is_active": "on"})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_url_error"' in page and "must start with https://" in page
    assert f'value="{typed}"' in page
    assert not WebhookEndpoint.objects.exists()
    response = alice_client.post(reverse("api_webhook_set"), {"url": "https://10.0.0.1/x"})
    assert "10.0.0.1 is a private address" in response.content.decode()


def test_the_secret_is_shown_once_and_rotated(alice_client, alice, settings):
    settings.DEBUG = False
    settings.PANEL_WEBHOOKS_ALLOW_PRIVATE = False
    url = "https://hooks.example.com/panel"
    response = alice_client.post(reverse("api_webhook_set"), {"url": url, "is_active": "on"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    secret = response.context["webhook_secret"]
    assert secret.startswith("whsec_") and secret in response.content.decode()
    endpoint = WebhookEndpoint.objects.get(user=alice)
    assert (endpoint.url, endpoint.is_active) == (url, True)
    assert decrypt(endpoint.secret_encrypted) == secret and secret not in endpoint.secret_encrypted
    page = alice_client.get(reverse("api_docs")).content.decode()
    assert secret not in page and endpoint.secret_hint in page and url in page
    # Changing the URL (and pausing) keeps the secret.
    changed = alice_client.post(reverse("api_webhook_set"), {"url": url + "2"})
    assert changed.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.url == url + "2" and not endpoint.is_active
    assert decrypt(endpoint.secret_encrypted) == secret
    rotated = alice_client.post(reverse("api_webhook_rotate"))
    new = rotated.context["webhook_secret"]
    assert new != secret and new in rotated.content.decode()
    endpoint.refresh_from_db()
    assert decrypt(endpoint.secret_encrypted) == new
    assert alice_client.post(reverse("api_webhook_remove")).status_code == 302
    assert not WebhookEndpoint.objects.filter(user=alice).exists()


def test_send_a_test_event_and_see_it_in_the_log(
    alice_client, alice, receiver, settings, django_capture_on_commit_callbacks
):
    settings.DEBUG = True
    settings.PANEL_WEBHOOKS_ALLOW_PRIVATE = True
    secret = alice_client.post(
        reverse("api_webhook_set"), {"url": receiver.url, "is_active": "on"}
    ).context["webhook_secret"]
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(reverse("api_webhook_test"))
    assert response.status_code == 302
    (request,) = receiver.requests
    assert signature_verify(
        secret=secret, header=request["headers"]["X-Panel-Signature"], body=request["body"]
    )
    event = WebhookEvent.objects.get(user=alice)
    assert event.type == "test" and event.status == WebhookEvent.Status.DELIVERED
    page = alice_client.get(reverse("api_docs")).content.decode()
    assert 'data-testid="webhook-log"' in page and event.event_id in page and "HTTP 200" in page


def test_the_test_button_needs_a_webhook(alice_client):
    response = alice_client.post(reverse("api_webhook_test"), follow=True)
    assert "Set an active webhook URL first." in response.content.decode()
    assert not WebhookEvent.objects.exists()


def test_the_api_page_documents_signature_checks(alice_client):
    page = alice_client.get(reverse("api_docs")).content.decode()
    for text in ["X-Panel-Signature", "hmac.compare_digest", "hash_equals", "tolerance"]:
        assert text in page


def test_admin_lists_webhooks_read_only_and_retries_now(
    admin_client, alice, receiver, settings, django_capture_on_commit_callbacks
):
    settings.DEBUG = True
    settings.PANEL_WEBHOOKS_ALLOW_PRIVATE = True
    receiver.codes = [500]
    from orders.services import webhook_endpoint_set, webhook_send_test

    webhook_endpoint_set(user=alice, url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        event = webhook_send_test(user=alice)
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.FAILED  # a test event gets one attempt
    listing = admin_client.get(reverse("admin:orders_webhookevent_changelist")).content.decode()
    assert event.event_id in listing
    endpoint_page = admin_client.get(
        reverse("admin:orders_webhookendpoint_change", args=[alice.webhook_endpoint.pk])
    ).content.decode()
    assert "secret_encrypted" not in endpoint_page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:orders_webhookevent_changelist"),
            {"action": "retry_now", "_selected_action": [event.pk]},
        )
    assert response.status_code == 302
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.DELIVERED and event.attempts == 2
    assert len(receiver.requests) == 2
