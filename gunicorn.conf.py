"""gunicorn's settings for the panel (the Dockerfile and docker-compose.yml run
`gunicorn panel.wsgi -c gunicorn.conf.py`). Options on the command line or in GUNICORN_CMD_ARGS
(e.g. GUNICORN_CMD_ARGS="--workers 5") override these.

https://docs.gunicorn.org/en/stable/settings.html
"""

bind = "0.0.0.0:8000"
# 3 sync workers, kept by measurement: bench/load_test.py's reseller mix at fixed rates, DEBUG off,
# on the project's 2-CPU machine compared 2, 3, 4 and 5 sync workers and 2 or 3 gthread workers of
# 4 threads, each twice (2026-12-02); none did better than 3 sync beyond the run-to-run noise of
# the shared machine. A request is CPU work plus short local database round trips (no upstream
# call inside one), so threads add little. Figures: docs/performance.md; re-run it on the
# production machine to choose for that one.
# bench/api_v2.py (per call, 2 CPUs) agrees: 3 or 4 sync
# workers, or 2 gthread workers x 4 threads, served up to twice the API calls of 2 sync
# workers, since an API call mostly waits on PostgreSQL and Redis (docs/api.md, Performance).
workers = 3

# The access log on stdout, without any query string: the reseller API accepts `key` in a GET
# query string (some clients send it so), and gunicorn's default format logs the request line
# (%(r)s), which holds it. %(U)s is the path alone. The Referer (%(f)s) is left out for the same
# reason: it is another page's full URL.
accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s "%(a)s"'

# The longest request line gunicorn accepts (its maximum; the default is 4094). A longer one is
# answered with gunicorn's own HTML 414 before the panel sees it: a client with a long list of
# ids sends them in a POST body instead (see docs/api.md).
limit_request_line = 8190
