"""Headless Chromium (Debian's package, driven by Playwright for Python) against
pytest-django's live_server. Run `scripts/ensure_chromium.sh` once to install the browser."""

from decimal import Decimal
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def _browser_settings(settings):
    settings.PANEL_UI_POLL_SECONDS = 1
    # The live server counts sign-ups and logins from 127.0.0.1 in the shared cache across
    # runs: repeated runs within the hour must not trip allauth's limits (tests/ui tests them).
    settings.ACCOUNT_RATE_LIMITS = False


# Every page reports what the Content-Security-Policy refused (panel/settings.py): the event
# listener is installed before any page script runs; Chromium also logs each refusal as a
# console error ("Refused to ..."), which catches them with JavaScript off too.
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`
    + ` at ${e.sourceFile || e.documentURI}:${e.lineNumber} ${e.sample || ""}`);
});
"""


@pytest.fixture
def new_page(browser, live_server):
    """Open pages in fresh contexts (separate cookies) at a given viewport. The test fails at
    teardown if any page broke the Content-Security-Policy; `new_page.csp_violations` lists
    them (a test that provokes one on purpose clears it)."""
    contexts = []
    violations: list[str] = []

    def _new_page(viewport=DESKTOP, javascript=True, also_allow=(), color_scheme="light"):
        """`also_allow`: URL prefixes besides the panel's that the page may reach (a fake
        payment gateway's checkout); `color_scheme`: the device's light or dark preference."""
        allowed = (live_server.url, *also_allow)
        context = browser.new_context(
            viewport=viewport,
            base_url=live_server.url,
            java_script_enabled=javascript,
            color_scheme=color_scheme,
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        context.expose_binding("__cspViolation", lambda _source, text: violations.append(text))
        context.add_init_script(_CSP_LISTENER)
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                violations.append(f"console: {message.text}")
                if message.type == "error" and "Content Security Policy" in message.text
                else None
            ),
        )
        # Nothing may come from outside the panel (no CDN): fail any such request.
        page.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith(allowed) else route.abort()
            ),
        )
        return page

    _new_page.csp_violations = violations
    yield _new_page
    for context in contexts:
        context.close()
    assert not violations, "Content-Security-Policy violations:\n" + "\n".join(violations)


@pytest.fixture(scope="session")
def screenshot_dir():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def htmx_idle(page) -> None:
    """Wait until htmx has no request in flight and has settled the last swap (its new
    elements are wired up only then)."""
    # A function, not an expression: Playwright evaluates a bare expression with eval, which
    # the Content-Security-Policy refuses.
    page.wait_for_function(
        "() => window.htmx"
        " && !document.querySelector('.htmx-request, .htmx-settling, .htmx-swapping')"
    )
    page.wait_for_timeout(50)


def login(page, username: str, password: str) -> None:
    page.goto("/login/")  # the old address: it redirects to allauth's login
    page.get_by_label("Username or e-mail").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url(lambda url: "/login/" not in url)


def staff_login(page, username: str, password: str, secret: str, url: str = "/admin/") -> None:
    """A staff member opens an admin page: allauth's login (the admin's), then the code of
    their authenticator app (tests/totp.py), and the page opens."""
    from tests.totp import log_in_with_code

    page.goto(url)
    log_in_with_code(page, login=username, password=password, secret=secret)
    page.wait_for_url(lambda u: u.split("?")[0].endswith(url))


def catalog_with_sandbox(sandbox_url: str, sandbox_key: str):
    """A provider pointing at the sandbox and two panel services mapped to its catalog:
    sandbox service 1 (Default, refill, cancel) and 5 (Custom Comments)."""
    from catalog.models import Category, Service, UpstreamService
    from providers.models import Provider

    provider = Provider(name="sandbox", api_url=sandbox_url)
    provider.set_api_key(sandbox_key)
    provider.save()
    followers = Category.objects.create(name="Instagram Followers", sort_order=1)
    comments = Category.objects.create(name="Instagram Comments", sort_order=2)
    up_followers = UpstreamService.objects.create(
        provider=provider,
        service_id="1",
        name="Instagram Followers [Refill 30D]",
        rate=Decimal("0.90"),
        min=50,
        max=10000,
        refill=True,
        cancel=True,
    )
    up_comments = UpstreamService.objects.create(
        provider=provider,
        service_id="5",
        name="Instagram Custom Comments",
        type="Custom Comments",
        rate=Decimal("8"),
        min=10,
        max=1500,
        cancel=True,
    )
    default = Service.objects.create(
        name="Instagram Followers [Refill 30D]",
        category=followers,
        type="Default",
        min=50,
        max=10000,
        rate=Decimal("1.35"),
        refill=True,
        refill_days=30,
        cancel=True,
        upstream=up_followers,
        description="Start: 0-1 hour\nSpeed: 5K/day\n<b>Refill</b>: 30 days",
    )
    custom = Service.objects.create(
        name="Instagram Custom Comments",
        category=comments,
        type="Custom Comments",
        min=10,
        max=1500,
        rate=Decimal("12"),
        cancel=True,
        upstream=up_comments,
        description="One comment per line. Quantity = number of lines.",
    )
    return provider, default, custom
