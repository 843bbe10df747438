"""A fake PayPal: enough of the REST API (Orders v2, captures, refunds, webhook verification)
for accounts.gateways.paypal, an approval page with Pay and Cancel, and webhooks posted as
PayPal posts them. It imports nothing of the panel's gateway code: it signs and checks on its
own, so the tests prove the panel talks PayPal, not that it agrees with itself.

- POST /v1/oauth2/token: HTTP basic with the configured client id and secret, else 401.
- POST /v2/checkout/orders: create (PayPal-Request-Id: the same id answers the same order).
- GET /v2/checkout/orders/<id>; POST /v2/checkout/orders/<id>/capture: once. A second
  capture is 422 ORDER_ALREADY_CAPTURED, unless it carries the PayPal-Request-Id of the one
  that captured: then it gets the same answer again, as PayPal does.
- GET /v2/payments/captures/<id>; POST /v2/payments/captures/<id>/refund.
- POST /v1/notifications/verify-webhook-signature: SUCCESS only for a transmission this fake
  sent, with its own headers and event, to the configured webhook id.
- GET /checkoutnow?token=<id>: the approval page; Pay approves and sends the customer to the
  return_url with ?token=<id>&PayerID=..., Cancel to the cancel_url.
- POST /_fake/dispute/<capture id>: a customer opens a dispute (CUSTOMER.DISPUTE.CREATED).
- POST /_fake/next-capture?status=PENDING: the next capture is pending (an eCheck);
  POST /_fake/settle/<capture id>?status=COMPLETED|DENIED: it clears or is denied.

After a capture (PAYMENT.CAPTURE.COMPLETED or .PENDING), a refund, a settlement or a
dispute the fake posts the event to
<panel_url>/payments/paypal/webhook/ with PayPal's transmission headers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from accounts.fake_gateways.server import Context, Request, Response, checkout_page

GATEWAY = "paypal"
TOKEN_LIFETIME = 32400  # seconds, as PayPal's sandbox answers
WEBHOOK_PATH = "/payments/paypal/webhook/"

Handler = Callable[[Context, Request, str], Response]


def handle(ctx: Context, req: Request) -> Response:
    for method, pattern, handler, needs_token in ROUTES:
        match = re.fullmatch(pattern, req.path)
        if match and req.method == method:
            if needs_token and not _bearer_ok(ctx, req):
                return _error(401, "AUTHENTICATION_FAILURE", "", "Authentication failed.")
            return handler(ctx, req, match.group(1) if match.groups() else "")
    return _error(404, "RESOURCE_NOT_FOUND", "", f"No route {req.method} {req.path}.")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id(length: int = 17) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _error(status: int, name: str, issue: str, message: str) -> Response:
    body: dict[str, Any] = {"name": name, "message": message, "debug_id": _new_id(13).lower()}
    if issue:
        body["details"] = [{"issue": issue, "description": message}]
    return Response.json(body, status)


def _store(ctx: Context) -> dict[str, Any]:
    store = ctx.store(GATEWAY)
    if "orders" not in store:
        store.update(
            tokens=set(),
            orders={},
            captures={},
            replies={},
            sent={},
            signing_key=secrets.token_bytes(32),
        )
    return store


# --- OAuth ------------------------------------------------------------------------------------


def _token(ctx: Context, req: Request, _: str) -> Response:
    expected = f"{ctx.config.paypal_client_id}:{ctx.config.paypal_client_secret}"
    given = req.headers.get("authorization", "")
    try:
        decoded = base64.b64decode(given.removeprefix("Basic ")).decode()
    except ValueError:
        decoded = ""
    if not given.startswith("Basic ") or not hmac.compare_digest(decoded, expected):
        body = {"error": "invalid_client", "error_description": "Client Authentication failed"}
        return Response.json(body, 401)
    if req.form().get("grant_type") != "client_credentials":
        return Response.json({"error": "unsupported_grant_type"}, 400)
    token = "A21AA" + secrets.token_urlsafe(40)
    with ctx.lock:
        _store(ctx)["tokens"].add(token)
    return Response.json(
        {
            "scope": "https://uri.paypal.com/services/payments/payment",
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-FAKE",
            "expires_in": TOKEN_LIFETIME,
            "nonce": _now() + secrets.token_hex(8),
        }
    )


def _bearer_ok(ctx: Context, req: Request) -> bool:
    token = req.headers.get("authorization", "").removeprefix("Bearer ")
    with ctx.lock:
        return token in _store(ctx)["tokens"]


# --- Orders -----------------------------------------------------------------------------------


def _create_order(ctx: Context, req: Request, _: str) -> Response:
    body = req.json()
    problem = _order_problem(body)
    if problem:
        return _error(400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", problem)
    request_id = req.headers.get("paypal-request-id", "")
    with ctx.lock:
        store = _store(ctx)
        replay = store["replies"].get(("create", request_id)) if request_id else None
        if replay is not None:
            return Response.json(replay, 200)
        order_id = _new_id()
        unit = dict(body["purchase_units"][0])
        unit.setdefault("reference_id", "default")
        context = ((body.get("payment_source") or {}).get("paypal") or {}).get(
            "experience_context"
        ) or (body.get("application_context") or {})
        order = {
            "id": order_id,
            "intent": "CAPTURE",
            "status": "PAYER_ACTION_REQUIRED",
            "purchase_units": [unit],
            "create_time": _now(),
            "_context": context,
        }
        store["orders"][order_id] = order
        answer = _order_view(ctx, order)
        if request_id:
            store["replies"][("create", request_id)] = answer
    return Response.json(answer, 201)


def _order_problem(body: Any) -> str:
    if not isinstance(body, dict) or body.get("intent") != "CAPTURE":
        return "intent must be CAPTURE."
    units = body.get("purchase_units")
    if not isinstance(units, list) or len(units) != 1 or not isinstance(units[0], dict):
        return "purchase_units must hold one unit."
    amount = units[0].get("amount") or {}
    try:
        value = Decimal(str(amount.get("value")))
    except InvalidOperation:
        return "amount.value is not a number."
    if value <= 0 or value != value.quantize(Decimal("0.01")) or "." not in str(amount["value"]):
        return "amount.value must be positive with 2 decimals."
    if len(str(amount.get("currency_code", ""))) != 3:
        return "amount.currency_code must be 3 letters."
    context = ((body.get("payment_source") or {}).get("paypal") or {}).get(
        "experience_context"
    ) or (body.get("application_context") or {})
    if not context.get("return_url") or not context.get("cancel_url"):
        return "return_url and cancel_url are required."
    return ""


def _order_view(ctx: Context, order: dict[str, Any]) -> dict[str, Any]:
    """The order as the API shows it (without the fake's own bookkeeping)."""
    view = _public(order)
    base = f"{ctx.gateway_url(GATEWAY)}/v2/checkout/orders/{order['id']}"
    links = [{"href": base, "rel": "self", "method": "GET"}]
    if order["status"] in ("PAYER_ACTION_REQUIRED", "CREATED"):
        approve = f"{ctx.gateway_url(GATEWAY)}/checkoutnow?token={order['id']}"
        links.append({"href": approve, "rel": "payer-action", "method": "GET"})
    if order["status"] == "APPROVED":
        links.append({"href": base + "/capture", "rel": "capture", "method": "POST"})
    view["links"] = links
    return view


def _public(value: Any) -> Any:
    """A deep copy without the fake's own bookkeeping (keys starting with "_"): a stored
    answer does not change when the order does."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value


def _get_order(ctx: Context, req: Request, order_id: str) -> Response:
    with ctx.lock:
        order = _store(ctx)["orders"].get(order_id)
        if order is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "No such order.")
        return Response.json(_order_view(ctx, order))


def _capture(ctx: Context, req: Request, order_id: str) -> Response:
    request_id = req.headers.get("paypal-request-id", "")
    with ctx.lock:
        store = _store(ctx)
        order = store["orders"].get(order_id)
        if order is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "No such order.")
        replay = store["replies"].get(("capture:" + order_id, request_id))
        if request_id and replay is not None:
            return Response.json(replay, 201)
        if order["status"] == "COMPLETED":
            return _error(
                422,
                "UNPROCESSABLE_ENTITY",
                "ORDER_ALREADY_CAPTURED",
                "Order already captured. If 'intent=CAPTURE' only one capture per order is allowed.",
            )
        if order["status"] != "APPROVED":
            return _error(
                422,
                "UNPROCESSABLE_ENTITY",
                "ORDER_NOT_APPROVED",
                "Payer has not yet approved the Order for payment.",
            )
        capture = _capture_order(ctx, order)
        answer = _order_view(ctx, order)
        if request_id:
            store["replies"][("capture:" + order_id, request_id)] = answer
    _send_event(ctx, f"PAYMENT.CAPTURE.{capture['status']}", _capture_view(ctx, capture))
    return Response.json(answer, 201)


def _capture_order(ctx: Context, order: dict[str, Any]) -> dict[str, Any]:
    """Mark the order captured (the caller holds the lock) and return the capture."""
    unit = order["purchase_units"][0]
    status = _store(ctx).pop("next_capture_status", "COMPLETED")
    capture = {
        "id": _new_id(),
        "status": status,
        "amount": dict(unit["amount"]),
        "final_capture": True,
        "custom_id": unit.get("custom_id", ""),
        "create_time": _now(),
        "_order_id": order["id"],
    }
    if status == "PENDING":
        capture["status_details"] = {"reason": "ECHECK"}
    _store(ctx)["captures"][capture["id"]] = capture
    order["status"] = "COMPLETED"
    unit["payments"] = {"captures": [capture]}
    return capture


def _capture_view(ctx: Context, capture: dict[str, Any]) -> dict[str, Any]:
    view = _public(capture)
    view["supplementary_data"] = {"related_ids": {"order_id": capture["_order_id"]}}
    base = f"{ctx.gateway_url(GATEWAY)}/v2"
    view["links"] = [
        {"href": f"{base}/payments/captures/{capture['id']}", "rel": "self", "method": "GET"},
        {"href": f"{base}/checkout/orders/{capture['_order_id']}", "rel": "up", "method": "GET"},
    ]
    return view


def _get_capture(ctx: Context, req: Request, capture_id: str) -> Response:
    with ctx.lock:
        capture = _store(ctx)["captures"].get(capture_id)
        if capture is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "No such capture.")
        return Response.json(_capture_view(ctx, capture))


def _refund(ctx: Context, req: Request, capture_id: str) -> Response:
    """Refund a capture in full (the merchant's dashboard or API) and tell the webhook."""
    with ctx.lock:
        capture = _store(ctx)["captures"].get(capture_id)
        if capture is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "No such capture.")
        if capture["status"] == "REFUNDED":
            return _error(
                422, "UNPROCESSABLE_ENTITY", "CAPTURE_FULLY_REFUNDED", "Already refunded."
            )
        capture["status"] = "REFUNDED"
        base = f"{ctx.gateway_url(GATEWAY)}/v2/payments"
        refund_id = _new_id()
        refund = {
            "id": refund_id,
            "status": "COMPLETED",
            "amount": dict(capture["amount"]),
            "create_time": _now(),
            "links": [
                {"href": f"{base}/refunds/{refund_id}", "rel": "self", "method": "GET"},
                {"href": f"{base}/captures/{capture_id}", "rel": "up", "method": "GET"},
            ],
        }
    _send_event(ctx, "PAYMENT.CAPTURE.REFUNDED", refund)
    return Response.json(refund, 201)


def _dispute(ctx: Context, req: Request, capture_id: str) -> Response:
    with ctx.lock:
        capture = _store(ctx)["captures"].get(capture_id)
    if capture is None:
        return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "No such capture.")
    dispute = {
        "dispute_id": "PP-D-" + _new_id(5),
        "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
        "status": "OPEN",
        "dispute_amount": dict(capture["amount"]),
        "disputed_transactions": [{"seller_transaction_id": capture_id}],
        "create_time": _now(),
    }
    _send_event(ctx, "CUSTOMER.DISPUTE.CREATED", dispute)
    return Response.json(dispute, 201)


def _next_capture(ctx: Context, req: Request, _: str) -> Response:
    """The next capture is PENDING (an eCheck still clearing) instead of COMPLETED."""
    status = req.query.get("status", "COMPLETED")
    if status not in ("COMPLETED", "PENDING"):
        return Response.json({"error": "status must be COMPLETED or PENDING"}, 400)
    with ctx.lock:
        _store(ctx)["next_capture_status"] = status
    return Response.json({"next_capture_status": status})


def _settle(ctx: Context, req: Request, capture_id: str) -> Response:
    """A PENDING capture clears (COMPLETED) or is denied (DENIED), and the webhook says so."""
    status = req.query.get("status", "")
    if status not in ("COMPLETED", "DENIED"):
        return Response.json({"error": "status must be COMPLETED or DENIED"}, 400)
    with ctx.lock:
        capture = _store(ctx)["captures"].get(capture_id)
        if capture is None or capture["status"] != "PENDING":
            return _error(422, "UNPROCESSABLE_ENTITY", "", "No such pending capture.")
        capture["status"] = status
        capture.pop("status_details", None)
        view = _capture_view(ctx, capture)
    _send_event(ctx, f"PAYMENT.CAPTURE.{status}", view)
    return Response.json(view)


# --- The approval page ------------------------------------------------------------------------


def _checkout_page(ctx: Context, req: Request, _: str) -> Response:
    order_id = req.query.get("token", "")
    with ctx.lock:
        order = _store(ctx)["orders"].get(order_id)
        if order is None:
            return Response.html("<h1>This order does not exist.</h1>", 404)
        amount = order["purchase_units"][0]["amount"]
        description = order["purchase_units"][0].get("description", "")
    base = f"{ctx.gateway_url(GATEWAY)}/checkoutnow"
    return checkout_page(
        title="PayPal (fake)",
        lines=[description, f"{amount['value']} {amount['currency_code']}", f"Order {order_id}"],
        pay_action=f"{base}/pay?token={order_id}",
        cancel_action=f"{base}/cancel?token={order_id}",
    )


def _approve(ctx: Context, req: Request, _: str) -> Response:
    order_id = req.query.get("token", "")
    with ctx.lock:
        order = _store(ctx)["orders"].get(order_id)
        if order is None:
            return Response.html("<h1>This order does not exist.</h1>", 404)
        if order["status"] == "PAYER_ACTION_REQUIRED":
            order["status"] = "APPROVED"
            order["payer"] = {"payer_id": _new_id(13), "email_address": "buyer@example.com"}
        query = {"token": order_id, "PayerID": order.get("payer", {}).get("payer_id", "")}
        target = _with_query(order["_context"]["return_url"], query)
    return Response.redirect(target)


def _cancel(ctx: Context, req: Request, _: str) -> Response:
    order_id = req.query.get("token", "")
    with ctx.lock:
        order = _store(ctx)["orders"].get(order_id)
        if order is None:
            return Response.html("<h1>This order does not exist.</h1>", 404)
        target = _with_query(order["_context"]["cancel_url"], {"token": order_id})
    return Response.redirect(target)


def _with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


# --- Webhooks ---------------------------------------------------------------------------------


def _signature(key: bytes, transmission_id: str, time: str, webhook_id: str, body: bytes) -> str:
    """PayPal signs "<transmission id>|<time>|<webhook id>|<crc32 of the body>" (with RSA;
    the fake with an HMAC of its own key, checked only by itself)."""
    message = f"{transmission_id}|{time}|{webhook_id}|{zlib.crc32(body)}".encode()
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def _send_event(ctx: Context, event_type: str, resource: dict[str, Any]) -> None:
    event = {
        "id": "WH-" + _new_id(24),
        "event_version": "1.0",
        "create_time": _now(),
        "resource_type": event_type.split(".")[1].lower(),
        "event_type": event_type,
        "summary": f"{event_type} (fake)",
        "resource": resource,
    }
    body = json.dumps(event, indent=1).encode()  # PayPal's bodies are not compact either
    transmission_id = secrets.token_hex(16)
    time = _now()
    webhook_id = ctx.config.paypal_webhook_id
    with ctx.lock:
        store = _store(ctx)
        signature = _signature(store["signing_key"], transmission_id, time, webhook_id, body)
        headers = {
            "Content-Type": "application/json",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": time,
            "PAYPAL-TRANSMISSION-SIG": signature,
            "PAYPAL-CERT-URL": f"{ctx.gateway_url(GATEWAY)}/v1/notifications/certs/CERT-fake",
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }
        store["sent"][transmission_id] = {"headers": headers, "body": body}
    url = ctx.config.panel_url.rstrip("/") + WEBHOOK_PATH
    ctx.post_webhook(GATEWAY, url, body, headers)


def _verify(ctx: Context, req: Request, _: str) -> Response:
    data = req.json()
    fields = ("auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time")
    if not isinstance(data, dict) or any(not data.get(f) for f in (*fields, "webhook_id")):
        return _error(400, "VALIDATION_ERROR", "MISSING_REQUIRED_PARAMETER", "Missing fields.")
    if not isinstance(data.get("webhook_event"), dict):
        return _error(400, "VALIDATION_ERROR", "MISSING_REQUIRED_PARAMETER", "No webhook_event.")
    with ctx.lock:
        store = _store(ctx)
        sent = store["sent"].get(data["transmission_id"])
        key = store["signing_key"]
    ok = sent is not None and data["webhook_id"] == ctx.config.paypal_webhook_id
    if ok:
        headers = sent["headers"]
        expected = _signature(
            key,
            data["transmission_id"],
            data["transmission_time"],
            data["webhook_id"],
            sent["body"],
        )
        ok = (
            hmac.compare_digest(data["transmission_sig"], expected)
            and data["transmission_time"] == headers["PAYPAL-TRANSMISSION-TIME"]
            and data["cert_url"] == headers["PAYPAL-CERT-URL"]
            and data["auth_algo"] == headers["PAYPAL-AUTH-ALGO"]
            and data["webhook_event"] == json.loads(sent["body"])
        )
    return Response.json({"verification_status": "SUCCESS" if ok else "FAILURE"})


ROUTES: list[tuple[str, str, Handler, bool]] = [
    ("POST", r"/v1/oauth2/token", _token, False),
    ("POST", r"/v2/checkout/orders", _create_order, True),
    ("GET", r"/v2/checkout/orders/([A-Z0-9]+)", _get_order, True),
    ("POST", r"/v2/checkout/orders/([A-Z0-9]+)/capture", _capture, True),
    ("GET", r"/v2/payments/captures/([A-Z0-9]+)", _get_capture, True),
    ("POST", r"/v2/payments/captures/([A-Z0-9]+)/refund", _refund, True),
    ("POST", r"/v1/notifications/verify-webhook-signature", _verify, True),
    ("GET", r"/checkoutnow", _checkout_page, False),
    ("POST", r"/checkoutnow/pay", _approve, False),
    ("POST", r"/checkoutnow/cancel", _cancel, False),
    ("POST", r"/_fake/dispute/([A-Z0-9]+)", _dispute, False),
    ("POST", r"/_fake/next-capture", _next_capture, False),
    ("POST", r"/_fake/settle/([A-Z0-9]+)", _settle, False),
]
