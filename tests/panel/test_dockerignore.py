"""The image never gets the secrets, the local state or the repository: .dockerignore lists
them, and a path matcher with Docker's rules (patterns from the context root, `**` for any
depth, a directory pattern covers what is under it, `!` re-includes, the last match wins)
shows which files of a typical checkout stay out."""

import fnmatch
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = (".env", "var/", ".venv/", ".git/", "test-artifacts/", "**/__pycache__/",
            "**/*.sqlite3", "node_modules/", ".mypy_cache/")  # fmt: skip


def _patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _matches(pattern: str, path: str) -> bool:
    pattern = pattern.rstrip("/")
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]  # the path and its dirs
    for candidate in candidates:
        if fnmatch.fnmatchcase(candidate, pattern):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatchcase(candidate, pattern[3:]):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatchcase(candidate, pattern):
            return True
    return False


def _ignored(path: str) -> bool:
    ignored = False
    for pattern in _patterns():
        if pattern.startswith("!"):
            if _matches(pattern[1:], path):
                ignored = False
        elif _matches(pattern, path):
            ignored = True
    return ignored


def test_dockerignore_lists_the_secrets_state_and_caches():
    assert set(REQUIRED) <= set(_patterns())


def test_secrets_state_and_the_repository_stay_out_of_the_image():
    for path in (
        ".env",
        ".env.production",
        "var/db.sqlite3",
        "var/broker/out/1_x.default.msg",
        "var/demo_api_key.txt",
        ".venv/bin/python",
        ".git/config",
        "test-artifacts/screenshot.png",
        "panel/__pycache__/settings.cpython-311.pyc",
        "orders/services/__pycache__/create.cpython-311.pyc",
        "db.sqlite3",
        "providers/sandbox/state.sqlite3",
        "node_modules/htmx/index.js",
        ".mypy_cache/3.11/cache.db",
        "staticfiles/staticfiles.json",
    ):
        assert _ignored(path), path


def test_what_the_image_needs_goes_in():
    for path in (
        "pyproject.toml",
        "README.md",
        "manage.py",
        "panel/settings.py",
        "orders/services/create.py",
        "providers/sandbox/__init__.py",
        "templates/base.html",
        "static/favicon.svg",
        "static/vendor/htmx.org-2.0.11/htmx.min.js",
        ".env.example",
    ):
        assert not _ignored(path), path


def test_every_git_ignored_entry_is_docker_ignored_too():
    lines = (ROOT / ".gitignore").read_text().splitlines()
    for entry in (line.strip() for line in lines if line.strip() and not line.startswith("#")):
        sample = entry.replace("*", "x").rstrip("/") + ("/file" if entry.endswith("/") else "")
        assert _ignored(sample), entry


def test_every_tracked_file_the_image_uses_goes_in():
    paths = "panel accounts catalog orders providers templates static manage.py pyproject.toml"
    tracked = subprocess.run(
        ["git", "ls-files", *paths.split(), "README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(tracked) > 100
    assert [path for path in tracked if _ignored(path)] == []
