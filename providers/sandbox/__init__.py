"""The sandbox provider: a real API v2 server that ships with the panel.

New panel owners try the panel against it without spending money, ``make run`` starts it as
the demo provider, and integration tests talk to it over real HTTP on loopback. It is pure
standard library (no Django) and runs as its own process::

    python -m providers.sandbox --port 8765 --db var/sandbox.sqlite3

See docs/sandbox.md. For tests, ``providers.sandbox.testing`` has ``SandboxServer`` (a thread)
and ``SandboxProcess`` (a child process).
"""

from providers.sandbox.server import SandboxConfig, SandboxHTTPServer, make_server, serve

__all__ = ["SandboxConfig", "SandboxHTTPServer", "SandboxServer", "make_server", "serve"]


def __getattr__(name: str) -> object:
    # `from providers.sandbox import SandboxServer` works without importing the test helpers
    # (and their subprocess/tempfile machinery) every time the server starts.
    if name in ("SandboxServer", "SandboxProcess"):
        from providers.sandbox import testing

        return getattr(testing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
