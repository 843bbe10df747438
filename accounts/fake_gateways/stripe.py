"""A fake Stripe: enough of its API for the `stripe` SDK's Checkout calls, a checkout page, and
webhooks signed as Stripe signs them (https://docs.stripe.com/webhooks#verify-manually):
``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the endpoint's
secret>``. It imports nothing of the panel (accounts.gateways.stripe is the other side).

Routes (under /stripe):

- ``POST /v1/checkout/sessions`` (form-encoded, ``line_items[0][price_data][unit_amount]``…),
  ``GET /v1/checkout/sessions/<id>``, ``GET /v1/checkout/sessions?payment_intent=pi_…``:
  Bearer secret key checked; errors shaped as Stripe's (``{"error": {"type", "message"}}``).
- ``GET /checkout/<id>``: the checkout page; ``POST /checkout/<id>/pay`` completes the session
  (paid), sends ``checkout.session.completed`` and the customer to ``success_url``;
  ``POST /checkout/<id>/cancel`` sends the customer to ``cancel_url`` (the session stays open).
- ``POST /_control/<action>/<id>`` (tests, demos): ``expire`` (``checkout.session.expired``),
  ``dispute`` (``charge.dispute.created``), ``refund`` (``charge.refunded``), ``pay_later``
  (completes unpaid, as a bank debit does), ``async_succeeded``, ``async_failed``.

A session past its ``expires_at`` expires (and its webhook goes out) on the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any

from accounts.fake_gateways.server import Context, Request, Response, checkout_page

# The API version the events say they were rendered with (the pinned SDK's).
API_VERSION = "2026-10-28.endive"
WEBHOOK_PATH = "/payments/stripe/webhook/"
MIN_LIFETIME, MAX_LIFETIME = 30 * 60, 24 * 3600
ZERO_DECIMAL = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX"}
ZERO_DECIMAL |= {"VND", "VUV", "XAF", "XOF", "XPF"}
THREE_DECIMAL = {"BHD", "JOD", "KWD", "OMR", "TND"}


def handle(ctx: Context, req: Request) -> Response:
    _expire_due(ctx)
    if req.path.startswith("/v1/"):
        if not _authorized(ctx, req):
            return _error(401, "Invalid API Key provided.", type_="invalid_request_error")
        return _api(ctx, req)
    if m := re.fullmatch(r"/checkout/(cs_test_\w+)(?:/(pay|cancel))?/?", req.path):
        return _checkout(ctx, req, m[1], m[2])
    if m := re.fullmatch(r"/_control/(\w+)/(cs_test_\w+)/?", req.path):
        if req.method != "POST":
            return _error(405, "POST only.")
        return _control(ctx, m[1], m[2])
    return _error(404, f"Unrecognized request URL ({req.method}: {req.path}).")


# --- The API -----------------------------------------------------------------------------------


def _authorized(ctx: Context, req: Request) -> bool:
    given = req.headers.get("authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), ctx.config.stripe_secret_key.encode())


def _api(ctx: Context, req: Request) -> Response:
    if req.path.rstrip("/") == "/v1/checkout/sessions":
        if req.method == "POST":
            return _create(ctx, req)
        if req.method == "GET":
            return _list(ctx, req)
    m = re.fullmatch(r"/v1/checkout/sessions/(\w+)/?", req.path)
    if m and req.method == "GET":
        with ctx.lock:
            session = _sessions(ctx).get(m[1])
            if session is not None:
                return Response.json(session)
        return _error(404, f"No such checkout.session: '{m[1]}'", code="resource_missing")
    return _error(404, f"Unrecognized request URL ({req.method}: {req.path}).")


def _create(ctx: Context, req: Request) -> Response:
    key = req.headers.get("idempotency-key", "")
    with ctx.lock:
        replies = ctx.store("stripe").setdefault("idempotency", {})
        if key and key in replies:
            return Response.json(replies[key])
    params = unflatten(req.form())
    try:
        session = _new_session(ctx, params)
    except ValueError as exc:
        return _error(400, str(exc), code="parameter_invalid")
    with ctx.lock:
        _sessions(ctx)[session["id"]] = session
        if key:
            replies[key] = session
    return Response.json(session)


def _new_session(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """A session as Stripe returns it, or ValueError with Stripe's kind of message."""
    if params.get("mode") != "payment":
        raise ValueError("This fake supports mode=payment only.")
    for name in ("success_url", "cancel_url"):
        if not str(params.get(name, "")).startswith(("http://", "https://")):
            raise ValueError(f"Not a valid URL: {name}")
    items = params.get("line_items") or {}
    total, currency = 0, ""
    for item in items.values():
        price = item.get("price_data") or {}
        if not str(price.get("unit_amount", "")).isdigit():
            raise ValueError("line_items[][price_data][unit_amount] must be an integer.")
        total += int(price["unit_amount"]) * int(item.get("quantity") or 1)
        currency = str(price.get("currency", "")).lower()
    if total <= 0 or len(currency) != 3:
        raise ValueError("Give at least one line item with a currency and a unit amount.")
    now = int(time.time())
    expires_at = int(params.get("expires_at") or now + MAX_LIFETIME)
    if not MIN_LIFETIME - 60 <= expires_at - now <= MAX_LIFETIME:
        raise ValueError("expires_at must be 30 minutes to 24 hours after the creation.")
    session_id = "cs_test_" + secrets.token_hex(24)
    return {
        "id": session_id,
        "object": "checkout.session",
        "amount_subtotal": total,
        "amount_total": total,
        "cancel_url": params["cancel_url"],
        "client_reference_id": params.get("client_reference_id"),
        "created": now,
        "currency": currency,
        "customer_email": params.get("customer_email"),
        "expires_at": expires_at,
        "livemode": False,
        "metadata": params.get("metadata") or {},
        "mode": "payment",
        "payment_intent": None,  # created when the customer pays (API 2022-08-01 and later)
        "payment_status": "unpaid",
        "status": "open",
        "success_url": params["success_url"],
        "url": f"{ctx.gateway_url('stripe')}/checkout/{session_id}",
    }


def _list(ctx: Context, req: Request) -> Response:
    wanted = req.query.get("payment_intent")
    limit = int(req.query.get("limit") or 10)
    with ctx.lock:
        found = [s for s in _sessions(ctx).values() if wanted in (None, s.get("payment_intent"))][
            ::-1
        ]
    return Response.json(
        {
            "object": "list",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "url": "/v1/checkout/sessions",
        }
    )


# --- The customer's checkout -------------------------------------------------------------------


def _checkout(ctx: Context, req: Request, session_id: str, action: str | None) -> Response:
    with ctx.lock:
        session = _sessions(ctx).get(session_id)
        if session is None:
            return Response.html("<h1>No such checkout session</h1>", 404)
        session = dict(session)
    if session["status"] != "open":
        return Response.html(f"<h1>This checkout session is {session['status']}</h1>", 410)
    if action is None and req.method == "GET":
        amount = _display(session["amount_total"], session["currency"])
        base = f"{ctx.gateway_url('stripe')}/checkout/{session_id}"
        return checkout_page(
            title="Fake Stripe Checkout",
            lines=[f"Add funds: {amount}", f"Email: {session.get('customer_email') or '-'}"],
            pay_action=f"{base}/pay",
            cancel_action=f"{base}/cancel",
        )
    if req.method != "POST":
        return _error(405, "POST only.")
    if action == "cancel":
        return Response.redirect(session["cancel_url"])
    paid = _complete(ctx, session_id, paid=True)
    _send(ctx, "checkout.session.completed", paid)
    return Response.redirect(paid["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id))


def _complete(ctx: Context, session_id: str, *, paid: bool) -> dict[str, Any]:
    with ctx.lock:
        session = _sessions(ctx)[session_id]
        session["status"] = "complete"
        session["payment_status"] = "paid" if paid else "unpaid"
        session["payment_intent"] = session["payment_intent"] or "pi_" + secrets.token_hex(12)
        return dict(session)


# --- Events ------------------------------------------------------------------------------------


def _control(ctx: Context, action: str, session_id: str) -> Response:
    with ctx.lock:
        session = _sessions(ctx).get(session_id)
        snapshot = dict(session) if session else None
    if snapshot is None:
        return _error(404, f"No such checkout.session: '{session_id}'", code="resource_missing")
    if action == "expire":
        if snapshot["status"] != "open":
            return _error(
                400, f"Only an open session can expire (this one is {snapshot['status']})."
            )
        _expire(ctx, session_id)
    elif action == "pay_later":
        _send(ctx, "checkout.session.completed", _complete(ctx, session_id, paid=False))
    elif action in ("async_succeeded", "async_failed"):
        with ctx.lock:
            session = _sessions(ctx)[session_id]
            session["payment_status"] = "paid" if action == "async_succeeded" else "unpaid"
            snapshot = dict(session)
        kind = "succeeded" if action == "async_succeeded" else "failed"
        _send(ctx, f"checkout.session.async_payment_{kind}", snapshot)
    elif action in ("dispute", "refund"):
        if snapshot["payment_status"] != "paid":
            return _error(400, "Only a paid session can be disputed or refunded.")
        _send(ctx, *_charge_event(action, snapshot))
    else:
        return _error(404, f"Unknown control action {action!r}.")
    with ctx.lock:
        return Response.json(_sessions(ctx)[session_id])


def _charge_event(action: str, session: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    charge_id = "ch_" + session["payment_intent"].removeprefix("pi_")
    money = {"amount": session["amount_total"], "currency": session["currency"]}
    if action == "dispute":
        dispute = {
            "id": "dp_" + secrets.token_hex(12),
            "object": "dispute",
            "charge": charge_id,
            "payment_intent": session["payment_intent"],
            "reason": "fraudulent",
            "status": "needs_response",
            **money,
        }
        return "charge.dispute.created", dispute
    charge = {
        "id": charge_id,
        "object": "charge",
        "payment_intent": session["payment_intent"],
        "amount_refunded": session["amount_total"],
        "refunded": True,
        "paid": True,
        **money,
    }
    return "charge.refunded", charge


def _expire_due(ctx: Context) -> None:
    now = time.time()
    with ctx.lock:
        due = [
            s["id"]
            for s in _sessions(ctx).values()
            if s["status"] == "open" and s["expires_at"] <= now
        ]
    for session_id in due:
        _expire(ctx, session_id)


def _expire(ctx: Context, session_id: str) -> None:
    with ctx.lock:
        session = _sessions(ctx)[session_id]
        session["status"] = "expired"
        snapshot = dict(session)
    _send(ctx, "checkout.session.expired", snapshot)


def _send(ctx: Context, kind: str, obj: dict[str, Any]) -> None:
    """Post the event to the panel's endpoint, as a Stripe dashboard's endpoint would."""
    event = {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }
    body = json.dumps(event, indent=2).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": sign(body, ctx.config.stripe_webhook_secret),
    }
    ctx.post_webhook("stripe", ctx.config.panel_url.rstrip("/") + WEBHOOK_PATH, body, headers)


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header of `body` (scheme v1), signed now or at `timestamp`."""
    t = int(time.time()) if timestamp is None else timestamp
    signed = f"{t}.".encode() + body
    return f"t={t},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


# --- Helpers -----------------------------------------------------------------------------------


def _display(amount: int, currency: str) -> str:
    """An amount in the smallest unit as the checkout shows it (its own list, as Stripe's)."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return f"{amount} {code}"
    if code in THREE_DECIMAL:
        return f"{amount / 1000:.3f} {code}"
    return f"{amount / 100:.2f} {code}"


def _sessions(ctx: Context) -> dict[str, dict[str, Any]]:
    sessions: dict[str, dict[str, Any]] = ctx.store("stripe").setdefault("sessions", {})
    return sessions


def _error(
    status: int, message: str, *, type_: str = "invalid_request_error", code: str = ""
) -> Response:
    error: dict[str, Any] = {"type": type_, "message": message}
    if code:
        error["code"] = code
    return Response.json({"error": error}, status)


def unflatten(form: dict[str, str]) -> dict[str, Any]:
    """Stripe's form encoding back into nested dicts: ``a[b][0][c]=v`` → ``{"a": {"b": {"0":
    {"c": "v"}}}}`` (list indexes stay string keys, in the order sent)."""
    result: dict[str, Any] = {}
    for key, value in form.items():
        parts = re.findall(r"[^\[\]]+", key)
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if parts:
            node[parts[-1]] = value
    return result
