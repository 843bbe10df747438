"""axe-core, the accessibility engine, run inside a page of the browser tests.

The script is axe-core 4.14.1 from npm (`npm pack axe-core@4.14.1`, its `axe.min.js` and
licence in tests/vendor/): the tests load it from this checkout, never from a CDN. It is added
to a browser context as an init script, which the Content-Security-Policy does not apply to
(Playwright hands it to the browser, as with the CSP listener of conftest.py), so the pages are
checked under their real policy.
"""

from pathlib import Path

AXE_SCRIPT = Path(__file__).resolve().parents[1] / "vendor" / "axe-core-4.14.1" / "axe.min.js"

# The impacts that fail a test; "moderate" and "minor" ones are reported, not failed.
BLOCKING = ("serious", "critical")


def install(page) -> None:
    """Make `axe` available on every page the page's context opens from now on."""
    page.context.add_init_script(path=str(AXE_SCRIPT))


def violations(page) -> list[dict]:
    """axe's WCAG 2.1 A/AA and best-practice checks of the page as it is now: the violations,
    each with its rule id, impact, help text and the first few offending elements."""
    return page.evaluate(
        """async () => {
            const result = await window.axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                                 "best-practice"]},
                resultTypes: ["violations"],
            });
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ") + " — "
                                                     + (n.failureSummary || "").split("\\n")[1]),
            }));
        }"""
    )


def blocking(found: list[dict]) -> list[dict]:
    return [v for v in found if v["impact"] in BLOCKING]


def describe(found: list[dict]) -> str:
    return "\n".join(
        f"  [{v['impact']}] {v['id']}: {v['help']}\n" + "\n".join(f"      {n}" for n in v["nodes"])
        for v in found
    )
