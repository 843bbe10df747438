#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (Playwright with executable_path; no browser
# download). Install it when it is missing and we may (root with apt-get); otherwise say so.
set -euo pipefail
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure_chromium: installing Debian's chromium for the browser tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "ensure_chromium: $CHROMIUM is missing; install Debian's chromium (apt-get install chromium)" >&2
  exit 2
fi
