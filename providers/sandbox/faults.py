"""Switchable faults: ways a real upstream misbehaves, on demand.

A fault applies to the next ``count`` API requests whose action is in ``actions`` (every action
when empty), or to all of them until cleared when ``count`` is null. Faults live in memory, not
in the state file: a restart clears them, like a real outage ends (``--fault`` sets them again at
start). Whether the request is still carried out matters to a panel, because an ``add`` that was
carried out but not answered must not be resubmitted:

==================  =========================  ==============================================
mode                request carried out?       what the client sees
==================  =========================  ==============================================
slow                yes, after ``seconds``     a normal answer, late (default 5 s)
timeout             yes, before sleeping       a normal answer after ``seconds`` (default 30 s)
http500             no                         HTTP ``status`` (500; or 502, 503...) error page
html                no                         a Cloudflare-like HTML page, HTTP ``status`` (200)
error               no                         ``{"error": message}``, HTTP 200
drop_after_accept   yes                        the socket is closed without an answer
drop                no                         the socket is closed without an answer
invalid_json        yes                        HTTP 200 with a body that is not JSON
nul_text            yes                        the normal answer, its texts holding NUL (and
                                               lone surrogates in names and errors)
==================  =========================  ==============================================
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from providers.sandbox.common import NOT_ENOUGH_FUNDS

SLOW = "slow"
TIMEOUT = "timeout"
HTTP500 = "http500"
HTML = "html"
ERROR = "error"
DROP_AFTER_ACCEPT = "drop_after_accept"
DROP = "drop"
INVALID_JSON = "invalid_json"
NUL_TEXT = "nul_text"

MODES = (SLOW, TIMEOUT, HTTP500, HTML, ERROR, DROP_AFTER_ACCEPT, DROP, INVALID_JSON, NUL_TEXT)
# Modes in which the request is carried out (and an `add` creates its order).
CARRIED_OUT = frozenset({SLOW, TIMEOUT, DROP_AFTER_ACCEPT, INVALID_JSON, NUL_TEXT})

DEFAULT_SLOW_SECONDS = 5.0

CLOUDFLARE_HTML = """<!DOCTYPE html>
<html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="robots" content="noindex,nofollow"></head>
<body><div class="main-wrapper" role="main"><div class="main-content">
<h1 class="zone-name-title h1">sandbox-provider.test</h1>
<h2 class="h2" id="challenge-running">Checking if the site connection is secure</h2>
<noscript><div id="challenge-error-title">Enable JavaScript and cookies to continue</div></noscript>
</div></div><div class="footer" role="contentinfo"><div class="footer-inner">
<div class="text-center">Performance &amp; security by Cloudflare</div></div></div></body></html>
"""

HTTP_ERROR_PAGES = {
    500: "<html><head><title>500 Internal Server Error</title></head><body>"
    "<center><h1>500 Internal Server Error</h1></center><hr><center>nginx</center></body></html>",
    502: "<html><head><title>502 Bad Gateway</title></head><body>"
    "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
    503: "<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
    "<center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center>"
    "</body></html>",
}

# What a PHP provider sends when a notice leaks into its output: HTML, then the JSON.
PHP_NOTICE = (
    '<br />\n<b>Warning</b>:  Undefined array key "currency" in '
    "<b>/var/www/html/api/v2.php</b> on line <b>42</b><br />\n"
)


@dataclass(frozen=True)
class Fault:
    id: int
    mode: str
    actions: tuple[str, ...] = ()
    count: int | None = None  # None: until cleared
    seconds: float | None = None
    status: int | None = None
    message: str | None = None
    body: str | None = None
    hits: int = 0

    def matches(self, action: str) -> bool:
        return not self.actions or action in self.actions

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["actions"] = list(self.actions)
        return data


class FaultSpecError(ValueError):
    """A fault description that can't be used; the message says why."""


def _actions(value: Any) -> tuple[str, ...]:
    if value in (None, "", "*"):
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(a, str) for a in value):
        raise FaultSpecError("actions must be a list of action names")
    return tuple(a.strip() for a in value if a.strip())


def _number(spec: Mapping[str, Any], name: str, kind: type, low: float) -> Any:
    value = spec.get(name)
    if value is None:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise FaultSpecError(f"{name} must be a number") from None
    if number < low:
        raise FaultSpecError(f"{name} must be at least {low}")
    return number


def build_fault(spec: Mapping[str, Any], fault_id: int) -> Fault:
    """Check a fault description (from JSON or the CLI) and give it an id."""
    mode = spec.get("mode")
    if mode not in MODES:
        raise FaultSpecError(f"mode must be one of: {', '.join(MODES)}")
    unknown = set(spec) - {"mode", "actions", "count", "seconds", "status", "message", "body"}
    if unknown:
        raise FaultSpecError(f"unknown fields: {', '.join(sorted(unknown))}")
    status = _number(spec, "status", int, 100)
    if status is not None and status > 599:
        raise FaultSpecError("status must be an HTTP status code")
    for text in ("message", "body"):
        if spec.get(text) is not None and not isinstance(spec[text], str):
            raise FaultSpecError(f"{text} must be a string")
    return Fault(
        id=fault_id,
        mode=mode,
        actions=_actions(spec.get("actions")),
        count=_number(spec, "count", int, 1),
        seconds=_number(spec, "seconds", float, 0),
        status=status,
        message=spec.get("message"),
        body=spec.get("body"),
    )


def parse_cli_fault(text: str) -> dict[str, Any]:
    """``--fault`` value: a JSON object, or ``mode[:actions[:count[:message]]]``.

    e.g. ``timeout:add:1``, ``http500:status,balance``, ``error:add::Incorrect link``.
    """
    if text.lstrip().startswith("{"):
        parsed = json.loads(text)
        if not isinstance(parsed, dict):
            raise FaultSpecError("a JSON fault must be an object")
        return parsed
    mode, _, rest = text.partition(":")
    actions, _, rest = rest.partition(":")
    count, _, message = rest.partition(":")
    spec: dict[str, Any] = {"mode": mode.strip(), "actions": actions}
    if count.strip():
        spec["count"] = count.strip()
    if message:
        spec["message"] = message
    return spec


class FaultBoard:
    """The active faults, shared by all request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, spec: Mapping[str, Any]) -> Fault:
        with self._lock:
            fault = build_fault(spec, self._next_id)
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def take(self, action: str) -> Fault | None:
        """The first fault for `action`, used up by one; None when the request should go through."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if not fault.matches(action):
                    continue
                count = None if fault.count is None else fault.count - 1
                used = replace(fault, count=count, hits=fault.hits + 1)
                if count == 0:
                    del self._faults[index]
                else:
                    self._faults[index] = used
                return used
        return None

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) < before

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]


def error_message(fault: Fault) -> str:
    return fault.message or NOT_ENOUGH_FUNDS


# Fields whose text also gets a lone surrogate in the nul_text mode: free text, never an id or
# a status, so that an answer cleaned by the panel still reads the same.
_FREE_TEXT = frozenset({"name", "category", "desc", "description", "error"})


def with_nul_text(data: Any, key: str = "") -> Any:
    """The nul_text fault: `data` (a decoded answer) with a NUL after the first character of
    every string that holds a letter, and a lone surrogate at the end of the free-text fields.
    JSON sends them as the escapes \\u0000 and \\ud800, which PostgreSQL cannot store."""
    if isinstance(data, dict):
        return {k: with_nul_text(v, str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [with_nul_text(item, key) for item in data]
    if not isinstance(data, str) or not any(c.isalpha() for c in data):
        return data
    text = data[:1] + "\x00" + data[1:]
    return text + "\ud800" if key.casefold() in _FREE_TEXT else text
