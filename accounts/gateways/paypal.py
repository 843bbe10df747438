"""PayPal Orders v2 over its REST API with `requests` (docs/payments.md, "PayPal").

Why not the official `paypal-server-sdk` (2.4.0, measured): it adds 16 MB and 8 packages to
the venv (apimatic-core and its adapters, jsonpickle, msgpack, CacheControl, python-dotenv,
and a newer setuptools), it can only talk to PayPal's two hosts (its `Environment` enum is
PRODUCTION or SANDBOX, with no custom base URL, so the tests and the demo could not point it
at the fake gateway), and it has no call for webhook verification, which we would have had to
write with `requests` anyway. The five calls below are small.

The flow: `start` creates an order (intent CAPTURE; our reference as reference_id and
custom_id; PayPal-Request-Id = our reference, so a retried create makes one order) and sends
the customer to its payer-action link. PayPal sends them back to the payment's page with
?token=<order id>, where `confirm_return` captures the order (PayPal-Request-Id
"capture-<order id>": a customer returning twice, even at once, captures once; a capture made
by another request id is answered 422 ORDER_ALREADY_CAPTURED, and the order is read instead).
The PAYMENT.CAPTURE.COMPLETED webhook says the same thing again, verified by PayPal's
verify-webhook-signature call. accounts.payments.payment_report_apply credits once.

API reference: https://developer.paypal.com/docs/api/orders/v2/ ,
https://developer.paypal.com/docs/api/webhooks/v1/#verify-webhook-signature_post
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Self
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings

from accounts.gateways.base import (
    CANCELED,
    DISPUTED,
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
)

TIMEOUT = (5, 20)  # connect, read (seconds)
TOKEN_MARGIN = 120  # seconds: a token is renewed this long before PayPal says it expires
USER_AGENT = "smm-panel/1 (+PayPal Orders v2)"
TRANSMISSION_HEADERS = (
    "paypal-transmission-id",
    "paypal-transmission-time",
    "paypal-transmission-sig",
    "paypal-cert-url",
    "paypal-auth-algo",
)
# A capture's status in the panel's words (a capture PENDING is e.g. an eCheck still clearing).
CAPTURE_STATUS = {
    "COMPLETED": PAID,
    "PENDING": PENDING,
    "DECLINED": FAILED,
    "FAILED": FAILED,
    "REFUNDED": REFUNDED,
    "PARTIALLY_REFUNDED": REFUNDED,
}
# An order not captured yet; VOIDED: PayPal gave up on it.
ORDER_STATUS = {
    "CREATED": PENDING,
    "SAVED": PENDING,
    "APPROVED": PENDING,
    "PAYER_ACTION_REQUIRED": PENDING,
    "VOIDED": CANCELED,
}
# Webhook events whose resource is a capture (or a refund of one), and what they mean.
CAPTURE_EVENTS = {
    "PAYMENT.CAPTURE.COMPLETED": PAID,
    "PAYMENT.CAPTURE.PENDING": PENDING,
    "PAYMENT.CAPTURE.DENIED": FAILED,
    "PAYMENT.CAPTURE.REFUNDED": REFUNDED,
    "PAYMENT.CAPTURE.REVERSED": REFUNDED,
}


class _TokenCache:
    """OAuth2 client-credentials tokens, one per (API base, client id), shared by the threads
    of a process and renewed shortly before they expire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}

    def get(self, key: tuple[str, ...], fetch: Callable[[], tuple[str, float]]) -> str:
        with self._lock:  # one fetch at a time: ten threads at once ask PayPal once
            token, expires = self._tokens.get(key, ("", 0.0))
            if token and time.monotonic() < expires:
                return token
            token, lifetime = fetch()
            self._tokens[key] = (token, time.monotonic() + max(0, lifetime - TOKEN_MARGIN))
            return token

    def forget(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._tokens.pop(key, None)


_tokens = _TokenCache()


class PayPalError(GatewayError):
    """PayPal answered an error, or could not be reached (`status` 0)."""

    def __init__(self, message: str, *, status: int = 0, issue: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.issue = issue


class PayPalGateway(Gateway):
    code = "paypal"
    name = "PayPal"
    settles_on_return = True

    def __init__(
        self, *, client_id: str, client_secret: str, webhook_id: str, api_base: str
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.webhook_id = webhook_id
        self.api_base = api_base.rstrip("/")
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    @classmethod
    def from_settings(cls) -> Self | None:
        if not (settings.PAYPAL_CLIENT_ID and settings.PAYPAL_CLIENT_SECRET):
            return None
        return cls(
            client_id=settings.PAYPAL_CLIENT_ID,
            client_secret=settings.PAYPAL_CLIENT_SECRET,
            webhook_id=settings.PAYPAL_WEBHOOK_ID,
            api_base=settings.PAYPAL_API_BASE,
        )

    def checkout_origins(self) -> list[str]:
        host = urlsplit(self.api_base)
        hostname = host.hostname or ""
        if hostname.endswith(".paypal.com"):
            sandbox = ".sandbox." in hostname
            return ["https://www.sandbox.paypal.com" if sandbox else "https://www.paypal.com"]
        return [f"{host.scheme}://{host.netloc}"]  # a fake PayPal serves its own approval page

    # --- HTTP -------------------------------------------------------------------------------

    def _fetch_token(self) -> tuple[str, float]:
        """POST /v1/oauth2/token with the client id and secret (HTTP basic)."""
        try:
            answer = self.session.post(
                f"{self.api_base}/v1/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self.client_secret),
                headers={"Accept": "application/json"},
                timeout=TIMEOUT,
            )
        except requests.RequestException as exc:
            raise PayPalError(f"PayPal could not be reached: {exc}") from exc
        if answer.status_code != 200:
            raise PayPalError(
                f"PayPal refused the client id and secret (HTTP {answer.status_code}).",
                status=answer.status_code,
            )
        data = _json(answer)
        if not data.get("access_token"):
            raise PayPalError("PayPal answered no access token.", status=answer.status_code)
        try:
            lifetime = float(data.get("expires_in", 0))
        except (TypeError, ValueError):
            raise PayPalError("PayPal answered a token with no valid lifetime.") from None
        return str(data["access_token"]), lifetime

    def _call(
        self, method: str, path: str, *, body: Any = None, request_id: str = "", raw: bytes = b""
    ) -> dict[str, Any]:
        """One API call with a bearer token (fetched again once if PayPal says it expired).
        `raw` is sent as the body when given (the webhook verification keeps the event's own
        bytes). Raises PayPalError."""
        key = (self.api_base, self.client_id, self.client_secret)
        for attempt in (1, 2):
            token = _tokens.get(key, self._fetch_token)
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Prefer": "return=representation",
            }
            if request_id:
                headers["PayPal-Request-Id"] = request_id
            data = raw or (json.dumps(body).encode() if body is not None else None)
            try:
                answer = self.session.request(
                    method, self.api_base + path, data=data, headers=headers, timeout=TIMEOUT
                )
            except requests.RequestException as exc:
                raise PayPalError(f"PayPal could not be reached: {exc}") from exc
            if answer.status_code == 401 and attempt == 1:
                _tokens.forget(key)
                continue
            return _checked(answer)
        raise AssertionError("unreachable")

    # --- The interface ----------------------------------------------------------------------

    def start(self, request: PaymentRequest) -> Checkout:
        """POST /v2/checkout/orders; the customer approves it at the payer-action link."""
        order = self._call(
            "POST", "/v2/checkout/orders", body=_order_body(request), request_id=request.reference
        )
        link = _link(order, "payer-action") or _link(order, "approve")
        if not order.get("id") or not link:
            raise GatewayError("PayPal answered an order without an id or an approval link.")
        return Checkout(
            gateway_id=str(order["id"]), redirect_url=link, details={"paypal_order": order["id"]}
        )

    def confirm_return(self, *, gateway_id: str, query: Mapping[str, str]) -> Report | None:
        """The customer is back from PayPal: capture the order (once, whatever the number of
        returns) and report what the capture says."""
        if query.get("token") and query["token"] != gateway_id:
            return None  # another order's token on this payment's page: nothing to capture
        try:
            order = self._call(
                "POST",
                f"/v2/checkout/orders/{quote(gateway_id, safe='')}/capture",
                body={},
                request_id=f"capture-{gateway_id}",
            )
        except PayPalError as exc:
            if exc.issue == "ORDER_ALREADY_CAPTURED" or (exc.status == 422 and not exc.issue):
                return self.fetch(gateway_id=gateway_id)
            if exc.issue in ("ORDER_NOT_APPROVED", "PAYER_ACTION_REQUIRED"):
                return None  # back without approving (the browser's back button)
            raise
        return _order_report(order)

    def fetch(self, *, gateway_id: str) -> Report | None:
        """GET /v2/checkout/orders/{id}: the order, and its capture when there is one."""
        return _order_report(self._call("GET", f"/v2/checkout/orders/{quote(gateway_id, safe='')}"))

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> Report | None:
        event = self._verified_event(body, headers)
        kind = str(event.get("event_type", ""))
        resource = event.get("resource")
        if not isinstance(resource, dict):
            return None
        event_id = str(event.get("id", ""))
        if kind in CAPTURE_EVENTS:
            return self._capture_event_report(kind, resource, event, event_id)
        if kind == "CHECKOUT.ORDER.APPROVED":
            # Approved, not paid yet: the capture happens when the customer comes back. A
            # webhook does not capture: it could be an order of another shop on the same
            # PayPal app; an order never captured lapses at PayPal and nobody is charged.
            return Report(
                gateway_id=str(resource.get("id", "")),
                status=PENDING,
                reference=_unit_reference(resource),
                event_id=event_id,
                payload=event,
            )
        if kind == "CUSTOMER.DISPUTE.CREATED":
            return self._dispute_report(resource, event, event_id)
        return None

    # --- Webhooks ---------------------------------------------------------------------------

    def _verified_event(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        """The event, once PayPal says it sent it (POST /v1/notifications/verify-webhook-
        signature). PayPal unreachable: Refusal(retry=True), so it delivers it again."""
        try:
            event = json.loads(body)
        except ValueError:
            raise Refusal("The body is not JSON.") from None
        if not isinstance(event, dict):
            raise Refusal("The body is not a JSON object.")
        summary = {"id": event.get("id"), "event_type": event.get("event_type")}
        missing = [name for name in TRANSMISSION_HEADERS if not headers.get(name)]
        if missing:
            raise Refusal(f"Missing PayPal headers: {', '.join(missing)}.", payload=summary)
        if not self.webhook_id:
            raise Refusal("PAYPAL_WEBHOOK_ID is not set.", retry=True, payload=summary)
        try:
            answer = self._call(
                "POST",
                "/v1/notifications/verify-webhook-signature",
                raw=_verification_body(body, headers, self.webhook_id),
            )
        except PayPalError as exc:
            retry = exc.status == 0 or exc.status >= 500 or exc.status in (401, 429)
            raise Refusal(
                f"Could not verify with PayPal: {exc}", retry=retry, payload=summary
            ) from exc
        if answer.get("verification_status") != "SUCCESS":
            raise Refusal(
                f"PayPal did not verify the signature ({answer.get('verification_status')}).",
                payload=summary,
            )
        return event

    def _capture_event_report(
        self, kind: str, resource: dict[str, Any], event: dict[str, Any], event_id: str
    ) -> Report | None:
        # A refund's (or reversal's) resource is the refund: its capture is its "up" link.
        up = _link(resource, "up")
        is_refund = "/captures/" in up
        capture_id = _link_id(resource, "up") if is_refund else str(resource.get("id", ""))
        order_id = _related_order_id(resource) or self._order_of_capture(capture_id)
        if not order_id:
            return None
        return Report(
            gateway_id=order_id,
            status=CAPTURE_EVENTS[kind],
            amount=_money(resource.get("amount")),
            currency=_currency(resource.get("amount")),
            reference="" if is_refund else str(resource.get("custom_id", "")),
            event_id=event_id,
            payload=event,
        )

    def _dispute_report(
        self, resource: dict[str, Any], event: dict[str, Any], event_id: str
    ) -> Report | None:
        for transaction in resource.get("disputed_transactions") or []:
            capture_id = str((transaction or {}).get("seller_transaction_id", ""))
            order_id = self._order_of_capture(capture_id)
            if order_id:
                return Report(
                    gateway_id=order_id, status=DISPUTED, event_id=event_id, payload=event
                )
        return None  # a dispute we cannot tie to one of our orders: nothing to apply

    def _order_of_capture(self, capture_id: str) -> str:
        """GET /v2/payments/captures/{id}: the order a capture belongs to ("" if unknown)."""
        if not capture_id:
            return ""
        try:
            capture = self._call("GET", f"/v2/payments/captures/{quote(capture_id, safe='')}")
        except PayPalError as exc:
            if exc.status == 404:
                return ""
            raise Refusal(f"Could not read capture {capture_id}: {exc}", retry=True) from exc
        return _related_order_id(capture)


# --- Pure helpers -----------------------------------------------------------------------------


def _order_body(request: PaymentRequest) -> dict[str, Any]:
    return {
        "intent": "CAPTURE",
        "purchase_units": [
            {
                "reference_id": request.reference,
                "custom_id": request.reference,
                "description": request.description[:127],
                "amount": {"currency_code": request.currency, "value": f"{request.amount:.2f}"},
            }
        ],
        "payment_source": {
            "paypal": {
                "experience_context": {
                    "return_url": request.return_url,
                    "cancel_url": request.cancel_url,
                    "user_action": "PAY_NOW",
                    "shipping_preference": "NO_SHIPPING",
                    "brand_name": settings.PANEL_NAME[:127],
                }
            }
        },
    }


def _verification_body(body: bytes, headers: Mapping[str, str], webhook_id: str) -> bytes:
    """The verification request with the event's own bytes inside: PayPal signs the body it
    sent, and a re-serialized event (other spacing, key order, number format) may not match."""
    fields = {
        "auth_algo": headers["paypal-auth-algo"],
        "cert_url": headers["paypal-cert-url"],
        "transmission_id": headers["paypal-transmission-id"],
        "transmission_sig": headers["paypal-transmission-sig"],
        "transmission_time": headers["paypal-transmission-time"],
        "webhook_id": webhook_id,
    }
    return json.dumps(fields)[:-1].encode() + b', "webhook_event": ' + body.strip() + b"}"


def _order_report(order: dict[str, Any]) -> Report:
    """An order (as created, read or captured) in the panel's words: its capture's status and
    amount once it has one, else the order's own status."""
    units = order.get("purchase_units") or [{}]
    unit = units[0] if isinstance(units[0], dict) else {}
    captures = (unit.get("payments") or {}).get("captures") or []
    reference = _unit_reference(order)
    if captures:
        capture = captures[0]
        status = CAPTURE_STATUS.get(str(capture.get("status", "")))
        if status is None:
            raise GatewayError(f"Unknown PayPal capture status {capture.get('status')!r}.")
        return Report(
            gateway_id=str(order.get("id", "")),
            status=status,
            amount=_money(capture.get("amount")) if status == PAID else None,
            currency=_currency(capture.get("amount")) if status == PAID else "",
            reference=reference,
            payload=order,
        )
    order_status = ORDER_STATUS.get(str(order.get("status", "")))
    if order_status is None:
        raise GatewayError(f"Unknown PayPal order status {order.get('status')!r}.")
    return Report(
        gateway_id=str(order.get("id", "")), status=order_status, reference=reference, payload=order
    )


def _unit_reference(order: Mapping[str, Any]) -> str:
    units = order.get("purchase_units") or [{}]
    unit = units[0] if isinstance(units[0], dict) else {}
    return str(unit.get("custom_id") or unit.get("reference_id") or "")


def _related_order_id(resource: Mapping[str, Any]) -> str:
    related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
    return str(related.get("order_id") or "")


def _link(resource: Mapping[str, Any], rel: str) -> str:
    for link in resource.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == rel:
            return str(link.get("href", ""))
    return ""


def _link_id(resource: Mapping[str, Any], rel: str) -> str:
    """The last path segment of a link: the id of the resource it points at."""
    return _link(resource, rel).rstrip("/").rpartition("/")[2]


def _money(amount: Any) -> Decimal | None:
    if not isinstance(amount, dict):
        return None
    try:
        return Decimal(str(amount.get("value")))
    except InvalidOperation:
        return None


def _currency(amount: Any) -> str:
    return str(amount.get("currency_code", "")) if isinstance(amount, dict) else ""


def _json(answer: requests.Response) -> dict[str, Any]:
    try:
        data = answer.json()
    except ValueError:
        raise PayPalError(
            f"PayPal answered HTTP {answer.status_code} with no JSON.", status=answer.status_code
        ) from None
    if not isinstance(data, dict):
        raise PayPalError("PayPal answered JSON that is not an object.", status=answer.status_code)
    return data


def _checked(answer: requests.Response) -> dict[str, Any]:
    """The answer's JSON when it is a 2xx; PayPalError with PayPal's issue code otherwise
    (e.g. 422 ORDER_ALREADY_CAPTURED)."""
    if 200 <= answer.status_code < 300:
        return _json(answer) if answer.content else {}
    try:
        data = answer.json()
    except ValueError:
        data = {}
    details = data.get("details") if isinstance(data, dict) else None
    issue = str(details[0].get("issue", "")) if details and isinstance(details[0], dict) else ""
    name = data.get("name", "") if isinstance(data, dict) else ""
    raise PayPalError(
        f"PayPal answered HTTP {answer.status_code} {name} {issue}".strip() + ".",
        status=answer.status_code,
        issue=issue,
    )
