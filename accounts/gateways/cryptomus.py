"""Crypto through Cryptomus (https://doc.cryptomus.com/business), and Heleket, which speaks
the same API at its own address (CRYPTOMUS_API_BASE).

- Creating an invoice: POST {base}/v1/payment, JSON body, headers `merchant` (the merchant's
  uuid) and `sign` = md5(base64(body) + payment key); the answer is
  {"state": 0, "result": {"uuid", "url", "expired_at", ...}}, an error {"state": 1, "message"}
  or {"state": 1, "errors": {field: [...]}}.
- Reading one: POST {base}/v1/payment/info {"uuid": ...}: the invoice, its status in
  `payment_status`.
- The webhook: POST to the invoice's url_callback, JSON with the signature *inside* the body
  (`sign`). It is checked as Cryptomus' PHP example does: take `sign` out, encode the rest again
  with PHP's json_encode (compact, "/" written "\\/"), md5(base64(that) + payment key). The docs
  encode with JSON_UNESCAPED_UNICODE; PHP's default writes non-ASCII as \\uXXXX: both are
  accepted (either needs the key).

Statuses (https://doc.cryptomus.com/business/payments/payment-statuses): `paid` and `paid_over`
settle the invoice; `wrong_amount` is an underpaid invoice Cryptomus closed: the payment fails,
nothing is credited, and staff are asked to decide (credit what arrived by an adjustment, or
refund it at Cryptomus), since the ledger credits only the amount asked. An overpaid invoice
credits the amount asked and flags the difference for staff.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Self
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils.translation import gettext_noop

from accounts.gateways.base import (
    CANCELED,
    FAILED,
    PAID,
    PENDING,
    REFUNDED,
    Checkout,
    Gateway,
    GatewayError,
    PaymentRequest,
    Refusal,
    Report,
    origin_of,
)

TIMEOUT = (5, 20)  # seconds to connect, to read
USER_AGENT = "smm-panel (+cryptomus)"
# Cryptomus accepts an invoice lifetime of 5 minutes to 12 hours.
LIFETIME_MIN, LIFETIME_MAX = 300, 43200

# Cryptomus' statuses in the panel's words. `locked` (funds held by its AML check) and the
# refund steps short of `refund_paid` change nothing here: they are recorded, and staff
# are told when it matters (ATTENTION).
STATUSES: dict[str, str] = {
    "paid": PAID,
    "paid_over": PAID,
    "process": PENDING,
    "check": PENDING,
    "confirm_check": PENDING,
    "wrong_amount_waiting": PENDING,
    "locked": PENDING,
    "refund_process": PENDING,
    "refund_fail": PENDING,
    "wrong_amount": FAILED,
    "fail": FAILED,
    "system_fail": FAILED,
    "cancel": CANCELED,
    "refund_paid": REFUNDED,
}


def php_json(data: Any, *, escape_unicode: bool = False) -> str:
    """`data` encoded as PHP's json_encode writes it: no spaces, "/" escaped as "\\/", and
    non-ASCII as \\uXXXX (PHP's default) or as is (JSON_UNESCAPED_UNICODE, which still escapes
    U+2028 and U+2029). Key order is kept: a decoded webhook encodes back to what was signed."""
    text = json.dumps(data, ensure_ascii=escape_unicode, separators=(",", ":"))
    text = text.replace("/", "\\/")
    if not escape_unicode:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text


def cryptomus_sign(body: str, key: str) -> str:
    """md5(base64(body) + key), as hex: the `sign` of a request body or of a webhook."""
    encoded = base64.b64encode(body.encode("utf-8")).decode("ascii")
    return hashlib.md5((encoded + key).encode("utf-8"), usedforsecurity=False).hexdigest()


def webhook_signature_ok(data: Mapping[str, Any], sign: str, key: str) -> bool:
    """Whether `sign` signs the webhook's fields (`sign` taken out), in either PHP encoding."""
    expected = {cryptomus_sign(php_json(data, escape_unicode=e), key) for e in (False, True)}
    given = sign.strip().lower().encode()
    return any(hmac.compare_digest(candidate.encode(), given) for candidate in expected)


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


class CryptomusGateway(Gateway):
    code = "cryptomus"
    name = gettext_noop(
        "Crypto (Cryptomus)"
    )  # shown through the catalog ({% translate offer.name %})

    def __init__(self, *, merchant_id: str, payment_key: str, api_base: str) -> None:
        self.merchant_id = merchant_id
        self.payment_key = payment_key
        self.api_base = api_base.rstrip("/")

    @classmethod
    def from_settings(cls) -> Self | None:
        if not (settings.CRYPTOMUS_MERCHANT_ID and settings.CRYPTOMUS_PAYMENT_KEY):
            return None
        return cls(
            merchant_id=settings.CRYPTOMUS_MERCHANT_ID,
            payment_key=settings.CRYPTOMUS_PAYMENT_KEY,
            api_base=settings.CRYPTOMUS_API_BASE,
        )

    def checkout_origins(self) -> list[str]:
        """The payment page is on pay.<domain> of the API's api.<domain> (pay.cryptomus.com,
        pay.heleket.com); a local fake serves both from one address."""
        origins = [origin_of(self.api_base)]
        parts = urlsplit(self.api_base)
        if parts.hostname and parts.hostname.startswith("api."):
            origins.append(f"{parts.scheme}://pay.{parts.netloc.removeprefix('api.')}")
        return [o for o in origins if o]

    # --- The API ----------------------------------------------------------------------------

    def _post(self, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """One signed call; its `result`, or GatewayError with what Cryptomus said."""
        body = php_json(payload)
        headers = {
            "merchant": self.merchant_id,
            "sign": cryptomus_sign(body, self.payment_key),
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        try:
            answer = requests.post(
                self.api_base + path, data=body.encode(), headers=headers, timeout=TIMEOUT
            )
        except requests.RequestException as exc:
            raise GatewayError(f"Cryptomus could not be reached: {exc}") from exc
        try:
            data = answer.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GatewayError(f"Cryptomus answered HTTP {answer.status_code}, not JSON.")
        result = data.get("result")
        if answer.status_code != 200 or data.get("state") != 0 or not isinstance(result, dict):
            raise GatewayError(f"Cryptomus refused (HTTP {answer.status_code}): {_error(data)}")
        return result

    def start(self, request: PaymentRequest) -> Checkout:
        """Create an invoice (https://doc.cryptomus.com/business/payments/creating-invoice).
        The order id is the payment's reference: Cryptomus answers a second call with the same
        order id with the invoice it already made."""
        lifetime = settings.PAYMENT_EXPIRE_HOURS * 3600
        invoice = self._post(
            "/v1/payment",
            {
                "amount": f"{request.amount:.2f}",
                "currency": request.currency,
                "order_id": request.reference,
                "url_return": request.cancel_url,
                "url_success": request.return_url,
                "url_callback": request.webhook_url,
                "lifetime": min(max(lifetime, LIFETIME_MIN), LIFETIME_MAX),
                # Shown in Cryptomus' dashboard, and echoed in each webhook.
                "additional_data": f"{request.description} {request.return_url}"[:255],
            },
        )
        uuid, url = invoice.get("uuid"), invoice.get("url")
        if not (isinstance(uuid, str) and uuid and isinstance(url, str) and url):
            raise GatewayError("Cryptomus made an invoice without a uuid or a payment page.")
        if invoice.get("order_id") not in (None, request.reference):
            raise GatewayError("Cryptomus answered with another order's invoice.")
        return Checkout(
            gateway_id=uuid,
            redirect_url=url,
            expires_at=_timestamp(invoice.get("expired_at")),
            details={"cryptomus_uuid": uuid, "amount": invoice.get("amount")},
        )

    def fetch(self, *, gateway_id: str) -> Report | None:
        """Read the invoice (https://doc.cryptomus.com/business/payments/payment-information)."""
        invoice = self._post("/v1/payment/info", {"uuid": gateway_id})
        status = invoice.get("payment_status") or invoice.get("status")
        try:
            return _report(invoice, status)
        except ValueError as exc:
            raise GatewayError(str(exc)) from exc

    # --- The webhook --------------------------------------------------------------------------

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> Report | None:
        """https://doc.cryptomus.com/business/payments/webhook: the signature is in the body."""
        try:
            data = json.loads(body)
        except ValueError:
            raise Refusal("The body is not JSON.") from None
        if not isinstance(data, dict):
            raise Refusal("The body is not a JSON object.")
        sign = data.pop("sign", None)
        # Not believed yet: recorded with a short summary, not the body its sender chose.
        summary = {k: str(data.get(k, ""))[:128] for k in ("uuid", "order_id", "status")}
        if not isinstance(sign, str) or not sign:
            raise Refusal("The callback has no sign.", payload=summary)
        if not webhook_signature_ok(data, sign, self.payment_key):
            raise Refusal(
                "The sign does not match the body (wrong key or altered).", payload=summary
            )
        try:
            return _report(data, data.get("status"))
        except ValueError as exc:
            raise Refusal(str(exc), payload=data) from exc


def _report(data: dict[str, Any], raw_status: Any) -> Report:
    """What a webhook or an invoice read says. The amount is what the invoice got, in the
    invoice's currency (checked against the payment): the invoice amount when Cryptomus says
    it is paid, what was received (in USD) when an invoice in USD was paid over or under."""
    uuid, order_id = data.get("uuid"), data.get("order_id")
    if not (isinstance(uuid, str) and uuid and isinstance(order_id, str) and order_id):
        raise ValueError("The callback has no uuid or no order_id.")
    if raw_status not in STATUSES:
        raise ValueError(f"Unknown Cryptomus status {raw_status!r}.")
    currency = str(data.get("currency") or "").upper()
    invoice_amount = _decimal(data.get("amount"))
    received = _decimal(data.get("payment_amount_usd")) if currency == "USD" else None
    amount = invoice_amount if raw_status in ("paid", "paid_over") else received
    if STATUSES[raw_status] == PAID and (amount is None or not currency):
        raise ValueError("A paid callback without the invoice's amount or currency.")
    if raw_status == "paid_over" and received is not None and invoice_amount is not None:
        amount = max(invoice_amount, received)
    return Report(
        gateway_id=uuid,
        status=STATUSES[raw_status],
        amount=amount,
        currency=currency,
        reference=order_id,
        event_id=f"{uuid}:{raw_status}",
        payload=data,
        attention=_attention(data, raw_status),
    )


def _attention(data: Mapping[str, Any], status: str) -> str:
    paid = f"{data.get('payment_amount') or '?'} {data.get('payer_currency') or ''}".strip() + (
        f" (≈ {data['payment_amount_usd']} USD)" if data.get("payment_amount_usd") else ""
    )
    asked = f"{data.get('amount')} {data.get('currency')}"
    if status == "wrong_amount":
        return (
            f"Underpaid: Cryptomus closed the invoice of {asked} after receiving {paid}. Nothing "
            "was credited: credit what arrived by a balance adjustment, or refund it at Cryptomus."
        )
    if status == "paid_over":
        return (
            f"Overpaid: {paid} received for an invoice of {asked}; the amount asked was "
            "credited. The difference stays with the merchant: credit it by an adjustment if due."
        )
    if status == "locked":
        return "Cryptomus locked the funds (its AML check); nothing is credited until it says paid."
    if status == "refund_fail":
        return "Cryptomus could not refund this payment (refund_fail)."
    return ""


def _error(data: Mapping[str, Any]) -> str:
    errors = data.get("errors")
    if isinstance(errors, dict) and errors:
        return "; ".join(
            f"{field}: {', '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
            for field, msgs in errors.items()
        )[:300]
    return str(data.get("message") or "no message")[:300]


def _timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
