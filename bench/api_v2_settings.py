"""Settings for bench/api_v2.py only: the panel's settings, a bench-only URL module with a bare
JSON view (the ceiling), and rate limits high enough never to refuse a benchmark call (the
limiter still runs, so its cost is measured)."""

from panel.settings import *  # noqa: F403

ROOT_URLCONF = "bench.api_v2_urls"
API_RATE_LIMIT_PER_KEY = "100000000/10s"
API_RATE_LIMIT_PER_IP = "100000000/10s"
LOGGING["root"]["level"] = "WARNING"  # noqa: F405  (one INFO line per order would skew `add`)
