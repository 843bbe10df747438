"""Review: what an unverified webhook may leave in the database. Anyone can post to a webhook
URL; a callback that is not believed is recorded with its reason and a short summary, never
with the whole body the sender chose (up to Django's 2.5 MB upload limit, each time)."""

import json

import pytest

from accounts.models import PaymentCallback

WEBHOOK = "/payments/cryptomus/webhook/"


@pytest.mark.django_db
@pytest.mark.parametrize("sign", ["0" * 32, None], ids=["wrong-sign", "no-sign"])
def test_an_unsigned_cryptomus_webhook_stores_a_summary_not_the_body(client, settings, sign):
    settings.PAYMENT_METHODS = ["cryptomus"]
    settings.CRYPTOMUS_MERCHANT_ID, settings.CRYPTOMUS_PAYMENT_KEY = "merchant", "key"
    fields = {
        "uuid": "u" * 5000,
        "order_id": "o-1",
        "status": "paid",
        "junk": "x" * 1_000_000,
    }
    if sign is not None:
        fields["sign"] = sign
    answer = client.post(WEBHOOK, json.dumps(fields), content_type="application/json")
    assert answer.status_code == 400
    refused = PaymentCallback.objects.get()
    assert refused.outcome == "refused" and refused.reason
    assert "junk" not in refused.payload
    assert refused.payload["order_id"] == "o-1"
    assert len(json.dumps(refused.payload)) < 1000
