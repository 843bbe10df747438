"""The signature check that docs/webhooks.md and the API page give resellers works on a real
delivery, and both show the same code."""

import html
import re
from pathlib import Path

import pytest

from orders.services import webhook_endpoint_set, webhook_send_test
from tests.orders.test_webhooks import Receiver

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def _python_block() -> str:
    text = (ROOT / "docs" / "webhooks.md").read_text(encoding="utf-8")
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def test_the_documented_python_check_verifies_a_real_delivery(
    alice, settings, django_capture_on_commit_callbacks
):
    settings.DEBUG = True
    settings.PANEL_WEBHOOKS_ALLOW_PRIVATE = True
    receiver = Receiver()
    try:
        secret = webhook_endpoint_set(user=alice, url=receiver.url).secret
        with django_capture_on_commit_callbacks(execute=True):
            webhook_send_test(user=alice)
    finally:
        receiver.close()
    namespace: dict = {}
    exec(_python_block(), namespace)
    verify = namespace["verify_signature"]
    (request,) = receiver.requests
    header, body = request["headers"]["X-Panel-Signature"], request["body"]
    assert verify(header, body, secret)
    assert not verify(header, body, secret + "x")
    assert not verify(header, body + b" ", secret)
    assert not verify(header, body, secret, tolerance=-1)


def test_the_api_page_shows_the_documented_code():
    template = (ROOT / "templates" / "accounts" / "api.html").read_text(encoding="utf-8")
    assert _python_block().strip() in html.unescape(template)
    php = re.search(
        r"```php\n(.*?)```", (ROOT / "docs" / "webhooks.md").read_text(encoding="utf-8"), re.S
    ).group(1)
    for line in php.strip().splitlines():
        if "constant-time" not in line:
            assert line in html.unescape(template), line
