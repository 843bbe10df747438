"""The fake Cryptomus (https://doc.cryptomus.com/business): the API the panel calls, a payment
page, and the webhook, signed as Cryptomus signs it. It imports nothing of the panel: it signs
and checks on its own, with PHP's json_encode rules written out again here.

- POST /v1/payment: create an invoice (headers `merchant` + `sign` checked over the raw body;
  a known order_id answers its existing invoice, as Cryptomus does).
- POST /v1/payment/info: read one by uuid or order_id.
- POST /v1/payment/resend: send an invoice's last webhook again.
- GET /pay/<uuid>: the payment page: Pay, Pay less (underpaid), Pay more (overpaid), Cancel;
  POST /pay/<uuid>/<full|less|more|cancel> settles the invoice, posts the webhook to its
  url_callback and sends the browser to url_success (url_return on Cancel).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from decimal import Decimal, InvalidOperation
from html import escape
from typing import Any

from accounts.fake_gateways.server import Context, Request, Response

GATEWAY = "cryptomus"
ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
URL_FIELDS = ("url_return", "url_success", "url_callback")
CENT = Decimal("0.01")
# What each button of the payment page makes of the invoice: its status and the share paid.
OUTCOMES = {
    "full": ("paid", Decimal(1)),
    "less": ("wrong_amount", Decimal("0.6")),
    "more": ("paid_over", Decimal("1.25")),
    "cancel": ("cancel", Decimal(0)),
}


def php_json_encode(data: Any) -> str:
    """PHP's json_encode($data, JSON_UNESCAPED_UNICODE), the encoding of Cryptomus' own example:
    compact, "/" escaped as "\\/", U+2028/U+2029 escaped, other non-ASCII left as is."""
    out = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return out.replace("/", "\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def sign(body: bytes, key: str) -> str:
    return hashlib.md5(base64.b64encode(body) + key.encode(), usedforsecurity=False).hexdigest()


def handle(ctx: Context, req: Request) -> Response:
    if req.method == "POST" and req.path.startswith("/v1/"):
        refused = _check_auth(ctx, req)
        if refused is not None:
            return refused
        if req.path == "/v1/payment":
            return _create(ctx, req)
        if req.path == "/v1/payment/info":
            return _info(ctx, req)
        if req.path == "/v1/payment/resend":
            return _resend(ctx, req)
        return _error(404, "Not found")
    match = re.fullmatch(r"/pay/([0-9a-f-]{36})(?:/(full|less|more|cancel))?", req.path)
    if match is None:
        return _error(404, "Not found")
    with ctx.lock:
        invoice = ctx.store(GATEWAY).get(match[1])
    if invoice is None:
        return Response.html("<!doctype html><title>Not found</title><p>No such invoice.", 404)
    if match[2] is None and req.method == "GET":
        return _payment_page(ctx, invoice)
    if match[2] is not None and req.method == "POST":
        return _settle(ctx, invoice, match[2])
    return _error(405, "Method not allowed")


def _error(status: int, message: str) -> Response:
    return Response.json({"state": 1, "message": message}, status)


def _check_auth(ctx: Context, req: Request) -> Response | None:
    """Cryptomus' check: the merchant uuid, and md5(base64(raw body) + payment key)."""
    config = ctx.config
    if req.headers.get("merchant") != config.cryptomus_merchant:
        return _error(401, "Merchant not found")
    given = req.headers.get("sign", "").encode()
    if not hmac.compare_digest(given, sign(req.body, config.cryptomus_payment_key).encode()):
        return _error(401, "Invalid Sign")
    return None


def _validate(data: Any) -> dict[str, list[str]]:
    if not isinstance(data, dict):
        return {"body": ["validation.json"]}
    errors: dict[str, list[str]] = {}
    try:
        if Decimal(str(data.get("amount"))) <= 0 or not isinstance(data.get("amount"), str):
            errors["amount"] = ["validation.numeric"]
    except InvalidOperation:
        errors["amount"] = ["validation.required"]
    if not isinstance(data.get("currency"), str) or not data.get("currency"):
        errors["currency"] = ["validation.required"]
    if not ORDER_ID.fullmatch(str(data.get("order_id") or "")):
        errors["order_id"] = ["validation.alpha_dash"]
    for name in URL_FIELDS:
        value = data.get(name)
        if value is not None and not re.fullmatch(r"https?://\S{1,247}", str(value)):
            errors[name] = ["validation.url"]
    lifetime = data.get("lifetime", 3600)
    if not isinstance(lifetime, int) or not 300 <= lifetime <= 43200:
        errors["lifetime"] = ["validation.between.numeric"]
    return errors


def _create(ctx: Context, req: Request) -> Response:
    data = req.json()
    errors = _validate(data)
    if errors:
        return Response.json({"state": 1, "errors": errors}, 422)
    store = ctx.store(GATEWAY)
    with ctx.lock:
        existing = next((i for i in store.values() if i["order_id"] == data["order_id"]), None)
        if existing is not None:
            return Response.json({"state": 0, "result": _public(existing)})
        invoice_id = str(uuid.uuid4())
        invoice = {
            "uuid": invoice_id,
            "order_id": data["order_id"],
            "amount": f"{Decimal(data['amount']).quantize(CENT)}",
            "currency": data["currency"].upper(),
            "payment_amount": None,
            "payment_amount_usd": None,
            "payer_currency": None,
            "payment_status": "check",
            "url": f"{ctx.gateway_url(GATEWAY)}/pay/{invoice_id}",
            "expired_at": int(time.time()) + data.get("lifetime", 3600),
            "is_final": False,
            "additional_data": data.get("additional_data"),
            **{name: data.get(name) for name in URL_FIELDS},
            "webhook": None,
        }
        store[invoice_id] = invoice
        return Response.json({"state": 0, "result": _public(invoice)})


def _public(invoice: dict[str, Any]) -> dict[str, Any]:
    """The invoice as the API shows it (the callback address and the last webhook are ours)."""
    hidden = {"webhook", *URL_FIELDS}
    shown = {k: v for k, v in invoice.items() if k not in hidden}
    return shown | {"status": invoice["payment_status"]}


def _find(ctx: Context, req: Request) -> dict[str, Any] | None:
    data = req.json() or {}
    if not isinstance(data, dict):
        return None
    with ctx.lock:
        for invoice in ctx.store(GATEWAY).values():
            if invoice["uuid"] == data.get("uuid") or (
                data.get("order_id") and invoice["order_id"] == data.get("order_id")
            ):
                return invoice
    return None


def _info(ctx: Context, req: Request) -> Response:
    invoice = _find(ctx, req)
    if invoice is None:
        return _error(404, "Payment not found")
    with ctx.lock:
        return Response.json({"state": 0, "result": _public(invoice)})


def _resend(ctx: Context, req: Request) -> Response:
    invoice = _find(ctx, req)
    if invoice is None:
        return _error(404, "Payment not found")
    if invoice["webhook"] is None or not invoice.get("url_callback"):
        return _error(422, "The invoice has no webhook to resend")
    _post_webhook(ctx, invoice)
    return Response.json({"state": 0, "result": []})


def _payment_page(ctx: Context, invoice: dict[str, Any]) -> Response:
    base = f"{ctx.gateway_url(GATEWAY)}/pay/{invoice['uuid']}"
    amount = f"{invoice['amount']} {invoice['currency']}"
    buttons = "".join(
        f'<form method="post" action="{escape(base)}/{action}">'
        f'<button type="submit">{escape(label)}</button></form>'
        for action, label in (
            ("full", f"Pay {amount}"),
            ("less", "Pay less (underpaid)"),
            ("more", "Pay more (overpaid)"),
            ("cancel", "Cancel"),
        )
    )
    state = (
        ""
        if invoice["payment_status"] == "check"
        else f"<p>Status: {invoice['payment_status']}</p>"
    )
    return Response.html(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Cryptomus (fake)</title></head>
<body><main><h1>Pay with crypto (fake Cryptomus)</h1>
<p>This is a fake gateway for development: no money moves.</p>
<ul><li>Invoice {escape(invoice["uuid"])}</li><li>Order {escape(invoice["order_id"])}</li>
<li>Amount {escape(amount)}, paid in USDT</li></ul>{state}{buttons}</main></body></html>"""
    )


def _settle(ctx: Context, invoice: dict[str, Any], action: str) -> Response:
    status, share = OUTCOMES[action]
    with ctx.lock:
        if invoice["is_final"]:
            return Response.html(
                "<!doctype html><title>Final</title><p>This invoice is final.", 409
            )
        paid = (Decimal(invoice["amount"]) * share).quantize(CENT)
        invoice.update(
            payment_status=status,
            is_final=True,
            payment_amount=f"{paid}" if share else None,
            payment_amount_usd=f"{paid}" if share else None,
            payer_currency="USDT" if share else None,
        )
        invoice["webhook"] = _webhook_fields(invoice, paid)
    if invoice.get("url_callback"):
        _post_webhook(ctx, invoice)
    back = invoice["url_return"] if action == "cancel" else invoice["url_success"]
    return Response.redirect(back or ctx.gateway_url(GATEWAY))


def _webhook_fields(invoice: dict[str, Any], paid: Decimal) -> dict[str, Any]:
    commission = (paid * Decimal("0.02")).quantize(CENT)
    return {
        "type": "payment",
        "uuid": invoice["uuid"],
        "order_id": invoice["order_id"],
        "amount": invoice["amount"],
        "payment_amount": invoice["payment_amount"],
        "payment_amount_usd": invoice["payment_amount_usd"],
        "merchant_amount": f"{paid - commission}" if paid else None,
        "commission": f"{commission}",
        "is_final": invoice["is_final"],
        "status": invoice["payment_status"],
        "from": "T" + secrets.token_hex(16) if paid else None,
        "wallet_address_uuid": None,
        "network": "tron",
        "currency": invoice["currency"],
        "payer_currency": invoice["payer_currency"],
        # What the merchant sent, echoed: the panel sends its payment page's URL ("/" inside).
        "additional_data": invoice["additional_data"],
        "txid": secrets.token_hex(32) if paid else None,
    }


def _post_webhook(ctx: Context, invoice: dict[str, Any]) -> None:
    """Sign as Cryptomus does: md5(base64(json_encode(fields)) + key), `sign` added last."""
    fields = dict(invoice["webhook"])
    fields["sign"] = sign(php_json_encode(fields).encode(), ctx.config.cryptomus_payment_key)
    body = php_json_encode(fields).encode()
    ctx.post_webhook(GATEWAY, invoice["url_callback"], body, {"Content-Type": "application/json"})
