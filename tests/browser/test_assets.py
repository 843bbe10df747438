"""The vendored assets are served by the panel itself."""

import urllib.request

import pytest

pytestmark = pytest.mark.browser


def test_static_assets_are_served_by_the_panel(live_server):
    for path in [
        "vendor/bootstrap-5.3.9/css/bootstrap.min.css",
        "vendor/htmx.org-2.0.11/htmx.min.js",
        "vendor/bootstrap-5.3.9/js/bootstrap.bundle.min.js",
    ]:
        with urllib.request.urlopen(f"{live_server.url}/static/{path}") as reply:
            assert reply.status == 200
            assert len(reply.read()) > 10_000
