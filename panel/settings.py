"""Settings for the panel, read from the environment (see .env.example for every variable).

Two ways to run:
- embedded (nothing set): SQLite under var/ and a Celery broker on the file system, so the web
  server, a worker and beat still run as separate processes with no server to install;
- production (DATABASE_URL and REDIS_URL set): PostgreSQL and Redis.
"""

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from panel.ratelimits import account_rate_limits, parse_rate_limit

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env("PANEL_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- Core -------------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
_DEV_SECRET_KEY = "insecure-dev-key-only-for-debug-and-tests"
SECRET_KEY = env("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not DEBUG and (not SECRET_KEY or SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random string of at least 32 characters when DEBUG is off "
        "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')."
    )
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the panel's host names when DEBUG is off.")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "panel.apps.PanelAdminConfig",  # django.contrib.admin with the panel's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "csp",  # django-csp: its system checks (the header comes from the middleware below)
    "rest_framework",
    "django_celery_beat",
    # django-allauth: sign-up, login, e-mail verification, password reset and change, two-factor.
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "accounts",
    "providers",
    "catalog",
    "orders",
    "content",
    "support",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the cookie, else Accept-Language; UserLanguageMiddleware (below, once the
    # user is known) puts a signed-in customer's saved choice first.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.UserTimezoneMiddleware",
    "accounts.middleware.UserLanguageMiddleware",
    "accounts.middleware.SessionActivityMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # allauth's login flow state and reauthentication redirects; then staff without a second
    # factor are sent to set one up before any admin page opens.
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.AdminTwoFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "panel.urls"
WSGI_APPLICATION = "panel.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "panel.context_processors.panel",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
# SQLite in IMMEDIATE mode takes the write lock when a transaction starts, so two processes that
# both debit a balance serialise instead of failing half-way with "database is locked".
# An empty DATABASE_URL (as .env.example has it) means the embedded default too.
DATABASES = {
    "default": env.db_url_config(
        env("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
else:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's, with a health check that sends nothing while the connection is quiet.
        DATABASES["default"]["ENGINE"] = "panel.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool(
        "DATABASE_CONN_HEALTH_CHECKS", default=True
    )
    # Prepared statements for the statements the panel marks (panel/postgresql/base.py: the
    # API's key lookup, `status`'s orders, an order's service lookup, the debit): PostgreSQL
    # plans each once per connection instead of on every run, which cost more than running them
    # (docs/api.md, Performance). They need server-side binding (parameters sent apart from the
    # SQL). false binds parameters client-side and prepares nothing, for a pooler that cannot
    # keep prepared statements (PgBouncer in transaction mode before 1.21, or without
    # max_prepared_statements).
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        # psycopg's own threshold never applies: the cursor tells each statement whether to prepare.
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=5
        )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# A covering index's INCLUDE columns only matter on PostgreSQL; SQLite just ignores them.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# --- Cache ------------------------------------------------------------------------------------
# Shared between processes (rate limits, login throttling): Redis when there is one, files
# under var/ otherwise.
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        # Django's Redis backend, its client object reused (panel/cache.py).
        "default": {"BACKEND": "panel.cache.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Auth -------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    # Login by username or e-mail address (ACCOUNT_LOGIN_METHODS).
    "allauth.account.auth_backends.AuthenticationBackend",
]
# allauth's views (mounted at /accounts/; the old /login/, /signup/... redirect there).
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_ADAPTER = "accounts.adapter.PanelAccountAdapter"
# The sign-up form adds the required acceptance of the terms (content.TermsAcceptance).
ACCOUNT_FORMS = {
    "login": "accounts.forms.PanelLoginForm",
    "signup": "accounts.forms.PanelSignupForm",
}
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_USERNAME_MIN_LENGTH = 3
# A new address replaces the old one once it is verified; the old one is told (notifications).
ACCOUNT_CHANGE_EMAIL = True
# Changing the e-mail address (where password resets go) or the two-factor setup, and issuing
# a new API key, need the password (or the second factor) entered in the last few minutes.
ACCOUNT_REAUTHENTICATION_REQUIRED = True
ACCOUNT_EMAIL_NOTIFICATIONS = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_SIGNUP_REDIRECT_URL = "funds_add"
ACCOUNT_PRESERVE_USERNAME_CASING = True
ACCOUNT_SESSION_REMEMBER = None  # the login form offers "Remember me"
ACCOUNT_EMAIL_SUBJECT_PREFIX = env("ACCOUNT_EMAIL_SUBJECT_PREFIX", default="")
# "mandatory": no login until the address is verified (a link is mailed); "optional": the link
# is mailed but not awaited; "none". Mandatory by default in production, optional with DEBUG.
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", default="") or (
    "optional" if DEBUG else "mandatory"
)
if ACCOUNT_EMAIL_VERIFICATION not in ("mandatory", "optional", "none"):
    raise ImproperlyConfigured("ACCOUNT_EMAIL_VERIFICATION must be mandatory, optional or none.")
# A deposit needs a verified e-mail address (accounts.selectors.user_may_deposit).
PANEL_REQUIRE_VERIFIED_EMAIL_FOR_DEPOSIT = (
    env.bool("PANEL_REQUIRE_VERIFIED_EMAIL_FOR_DEPOSIT")
    if env("PANEL_REQUIRE_VERIFIED_EMAIL_FOR_DEPOSIT", default="")
    else not DEBUG
)
# allauth's rate limits (counted in the cache, per client address from accounts.ratelimit
# client_ip and per login name). The old throttle variables keep their meaning: failed logins
# per (login, address) and per address in the window, sign-up forms and password-reset requests
# per address in theirs (0 turns one off).
LOGIN_THROTTLE_ATTEMPTS = env.int("LOGIN_THROTTLE_ATTEMPTS", default=5)
LOGIN_THROTTLE_IP_ATTEMPTS = env.int("LOGIN_THROTTLE_IP_ATTEMPTS", default=50)
LOGIN_THROTTLE_SECONDS = env.int("LOGIN_THROTTLE_SECONDS", default=900)
SIGNUP_THROTTLE_ATTEMPTS = env.int("SIGNUP_THROTTLE_ATTEMPTS", default=10)
SIGNUP_THROTTLE_SECONDS = env.int("SIGNUP_THROTTLE_SECONDS", default=3600)
PASSWORD_RESET_THROTTLE_ATTEMPTS = env.int("PASSWORD_RESET_THROTTLE_ATTEMPTS", default=5)
PASSWORD_RESET_THROTTLE_SECONDS = env.int("PASSWORD_RESET_THROTTLE_SECONDS", default=3600)
ACCOUNT_RATE_LIMITS = account_rate_limits(
    login=(LOGIN_THROTTLE_ATTEMPTS, LOGIN_THROTTLE_IP_ATTEMPTS, LOGIN_THROTTLE_SECONDS),
    signup=(SIGNUP_THROTTLE_ATTEMPTS, SIGNUP_THROTTLE_SECONDS),
    reset=(PASSWORD_RESET_THROTTLE_ATTEMPTS, PASSWORD_RESET_THROTTLE_SECONDS),
)

# Two-factor (allauth.mfa): an authenticator app (TOTP) with recovery codes, and passkeys.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
# A code from the 30-second step before or after is accepted too: a phone's clock a few seconds
# off, or a code typed as it changes, still works (allauth's default accepts only the current).
MFA_TOTP_TOLERANCE = 1
MFA_TOTP_ISSUER = env("MFA_TOTP_ISSUER", default="") or env("PANEL_NAME", default="SMM Panel")
# Browsers allow WebAuthn on http://localhost only; with DEBUG the demo may try passkeys there.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG
# Staff need a second factor for the admin (accounts.middleware.AdminTwoFactorMiddleware).
# With DEBUG only, these usernames (the demo admin) are exempt, and the admin shows a banner.
PANEL_ADMIN_2FA_EXEMPT = env.list("PANEL_ADMIN_2FA_EXEMPT", default=[]) if DEBUG else []

# --- Internationalisation and time --------------------------------------------------------------
# The customer panel speaks these languages (catalogs in locale/, docs/development.md
# "Translations"); the admin and /api/v2 stay English. URLs carry no language prefix: a
# signed-in customer's choice (User.language) wins, then the django_language cookie that the
# language switch sets, then the browser's Accept-Language, then LANGUAGE_CODE.
LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", "English"),
    ("es", "Español"),
    ("pt-br", "Português (Brasil)"),
    ("ru", "Русский"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env(
            "STATICFILES_BACKEND",
            default="whitenoise.storage.CompressedManifestStaticFilesStorage",
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Uploaded files ---------------------------------------------------------------------------
# Support tickets' attachments (support/, docs/support.md). Never under static/ and never served
# by the web server: support.views.ticket_attachment hands each to its owner and staff only.
MEDIA_ROOT = Path(env("MEDIA_ROOT", default="") or VAR_DIR / "media")

# --- E-mail (docs/notifications.md) --------------------------------------------------------------
# EMAIL_URL sets the SMTP server in one variable, as django-environ reads it
# (smtp+tls://user:password@smtp.example.com:587, smtp+ssl://…:465, smtp://host:25); the EMAIL_*
# variables below override its parts. EMAIL_BACKEND picks another backend, e.g. an e-mail
# service through django-anymail (anymail.backends.mailgun.EmailBackend, …postmark…,
# …amazon_ses…), configured by ANYMAIL_* variables (ANYMAIL_MAILGUN_API_KEY=… becomes
# ANYMAIL["MAILGUN_API_KEY"]).
_email_url: dict[str, Any] = (
    env.email_url("EMAIL_URL", default="") if env("EMAIL_URL", default="") else {}
)
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    default=_email_url.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"),
)
ANYMAIL: dict[str, str] = {
    name.removeprefix("ANYMAIL_"): value
    for name, value in sorted(environ.Env.ENVIRON.items())
    if name.startswith("ANYMAIL_") and value
}
# With DEBUG off, a console, file or locmem backend stops every manage.py command (a system
# check, accounts/checks.py): password-reset links would land in the logs. This allows it.
ALLOW_CONSOLE_EMAIL = env.bool("ALLOW_CONSOLE_EMAIL", default=False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="panel@localhost")
# The SMTP backend's server (Django's defaults: localhost:25, no login, no TLS).
EMAIL_HOST = env("EMAIL_HOST", default=_email_url.get("EMAIL_HOST") or "localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=_email_url.get("EMAIL_PORT") or 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default=_email_url.get("EMAIL_HOST_USER") or "")
EMAIL_HOST_PASSWORD = env(
    "EMAIL_HOST_PASSWORD", default=_email_url.get("EMAIL_HOST_PASSWORD") or ""
)
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=bool(_email_url.get("EMAIL_USE_TLS")))
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=bool(_email_url.get("EMAIL_USE_SSL")))
# Seconds an SMTP connection may block (Django's default: forever, which would hang a worker).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured(
        "Set EMAIL_USE_TLS (STARTTLS, port 587) or EMAIL_USE_SSL (465), not both."
    )
ADMINS = [("Admin", a) for a in env.list("ADMIN_EMAILS", default=[])]

# --- Security (production) --------------------------------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    LANGUAGE_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Content-Security-Policy (django-csp) ------------------------------------------------------
# Every page, the admin's included, loads scripts, styles, images and fonts from the panel itself
# only, and htmx talks to the panel only. No inline <script>, no event-handler attribute, no
# <style> element, no style="" attribute, no eval (htmx runs with allowEval false): what the
# templates need is in static/panel/. One exception: img-src allows data:, because Bootstrap's CSS
# draws its small icons (select arrow, check mark, close button) as data: SVG images; a data:
# image cannot run script. With DEBUG on, django-csp leaves Django's 404 and 500 debug pages
# (inline styles) without the header.
_CSP_DIRECTIVES: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# Where browsers post violation reports (a path or an https URL of a collector), if anywhere.
_csp_report_uri = env("CSP_REPORT_URI", default="")
if _csp_report_uri:
    if not _csp_report_uri.startswith(("/", "https://", "http://")) or any(
        c in _csp_report_uri for c in " ;,'\""
    ):
        raise ImproperlyConfigured(
            "CSP_REPORT_URI must be a path (/csp-report) or an http(s) URL, without spaces, "
            "semicolons, commas or quotes."
        )
    _CSP_DIRECTIVES["report-uri"] = [_csp_report_uri]
# true: the same policy as Content-Security-Policy-Report-Only (browsers report, block nothing),
# to try a customised template before enforcing.
_csp_report_only = env.bool("CSP_REPORT_ONLY", default=False)
CONTENT_SECURITY_POLICY: dict[str, Any] = (
    {} if _csp_report_only else {"DIRECTIVES": _CSP_DIRECTIVES}
)
CONTENT_SECURITY_POLICY_REPORT_ONLY: dict[str, Any] = (
    {"DIRECTIVES": _CSP_DIRECTIVES} if _csp_report_only else {}
)

# --- Celery -----------------------------------------------------------------------------------
# Without REDIS_URL the broker is kombu's filesystem transport: messages are files under var/,
# which is enough for one machine and needs no server.
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="") or REDIS_URL or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("out", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # The worker's broadcast exchanges (pidbox); kombu's default is ./control in the cwd.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith("redis://"):
    # kombu's Redis transport with its redis client kept between messages (panel/broker.py).
    CELERY_BROKER_TRANSPORT = "panel.broker:Transport"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=180)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Provider I/O runs on its own queue so a slow upstream never delays cheap local work.
CELERY_TASK_ROUTES = {
    "providers.tasks.*": {"queue": "provider_io"},
    "catalog.tasks.catalog_sync_provider_task": {"queue": "provider_io"},
    "catalog.tasks.catalog_sync_run_task": {"queue": "provider_io"},
    "orders.tasks.order_submit": {"queue": "provider_io"},
    "orders.tasks.provider_sweep": {"queue": "provider_io"},
    "orders.tasks.provider_send_refills": {"queue": "provider_io"},
    "orders.tasks.provider_send_cancels": {"queue": "provider_io"},
    "accounts.tasks.payments_reconcile_sweep": {"queue": "provider_io"},  # reads gateways
    "accounts.tasks.display_currency_rates_update_sweep": {"queue": "provider_io"},  # a rates URL
    "orders.tasks.webhook_deliver": {"queue": "provider_io"},  # posts to resellers' servers
    # Old names of the three above, registered for one release (see orders/tasks.py).
    "orders.tasks.provider_poll_orders": {"queue": "provider_io"},
    "orders.tasks.provider_process_refills": {"queue": "provider_io"},
    "orders.tasks.provider_process_cancels": {"queue": "provider_io"},
}
CELERY_TASK_DEFAULT_QUEUE = "default"
# Every queue the routes above name, declared: a worker started without --queues (plain
# `celery -A panel worker`) consumes all of them; operators may still split them with -Q.
CELERY_TASK_QUEUES = tuple(Queue(name, routing_key=name) for name in ("default", "provider_io"))
# A queue whose oldest message has waited longer than this (no worker consumes it, or too few)
# is reported by /healthz ("degraded") and on the admin cockpit (panel/queues.py).
QUEUE_STALE_SECONDS = env.int("QUEUE_STALE_SECONDS", default=300)
if QUEUE_STALE_SECONDS < 1:
    raise ImproperlyConfigured("QUEUE_STALE_SECONDS must be at least 1.")
# Schedules live in the database (django-celery-beat), where admins edit them; their defaults
# are defined once, in `python manage.py setup_schedules` (accounts/management/commands/), which
# `make run` and the beat container run at start and which never overwrites an admin's edit.

# --- Panel ------------------------------------------------------------------------------------
PANEL_NAME = env("PANEL_NAME", default="SMM Panel")
PANEL_CURRENCY = env("PANEL_CURRENCY", default="USD")
# Where the hourly task reads the display currencies' rates (docs/money.md): a JSON answer
# {"base": "<PANEL_CURRENCY>", "rates": {"EUR": 0.92, ...}}. Empty: staff set them by hand.
DISPLAY_CURRENCY_RATES_URL = env("DISPLAY_CURRENCY_RATES_URL", default="")
if DISPLAY_CURRENCY_RATES_URL and not DISPLAY_CURRENCY_RATES_URL.startswith(
    ("https://", "http://")
):
    raise ImproperlyConfigured(
        f"DISPLAY_CURRENCY_RATES_URL must be an http(s) URL, got {DISPLAY_CURRENCY_RATES_URL!r}."
    )
PANEL_PUBLIC_URL = env("PANEL_PUBLIC_URL", default="http://127.0.0.1:8000")
# Fernet key(s) that encrypt provider API keys at rest; the first one encrypts, all decrypt.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
if not FIELD_ENCRYPTION_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must hold a Fernet key when DEBUG is off (generate one with: "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
        )
    # A fixed development key: provider keys stored while DEBUG is on are not secret anyway.
    FIELD_ENCRYPTION_KEYS = ["ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXktMDA="]

# The reseller API (/api/v2): calls per sliding window per key and per client address
# ("60/10s", "1000/h"; empty turns a limit off), the header that carries the client's address
# behind a proxy (e.g. HTTP_X_REAL_IP; allauth's login limits use it too), and how often a key's last
# use is written (at most once per this many seconds per address; 0: every call).
API_RATE_LIMIT_PER_KEY = env("API_RATE_LIMIT_PER_KEY", default="60/10s")
API_RATE_LIMIT_PER_IP = env("API_RATE_LIMIT_PER_IP", default="120/10s")
for _name in ("API_RATE_LIMIT_PER_KEY", "API_RATE_LIMIT_PER_IP"):
    try:
        parse_rate_limit(globals()[_name])
    except ValueError as exc:
        raise ImproperlyConfigured(f"{_name}: {exc}") from None
API_CLIENT_IP_HEADER = env("API_CLIENT_IP_HEADER", default=None)
# How many proxies of ours append to that header: the client's address is the entry this many
# places from the right (its left end is whatever the client wrote). See accounts.ratelimit.
API_TRUSTED_PROXY_COUNT = env.int("API_TRUSTED_PROXY_COUNT", default=1)
if API_TRUSTED_PROXY_COUNT < 1:
    raise ImproperlyConfigured(
        "API_TRUSTED_PROXY_COUNT must be 1 or more (the proxies between the client and the panel "
        "that append to API_CLIENT_IP_HEADER)."
    )
API_KEY_TOUCH_SECONDS = env.int("API_KEY_TOUCH_SECONDS", default=60)

# Customer panel: how often an active order's progress refreshes itself, and the text of the
# "Add funds" page.
PANEL_UI_POLL_SECONDS = env.int("PANEL_UI_POLL_SECONDS", default=10)
# Staff's credit / debit form refuses a second identical change (same customer, same signed
# amount) within this many seconds unless it is confirmed again (0 turns the guard off).
BALANCE_REPEAT_WINDOW_SECONDS = env.int("BALANCE_REPEAT_WINDOW_SECONDS", default=600)
if BALANCE_REPEAT_WINDOW_SECONDS < 0:
    raise ImproperlyConfigured("BALANCE_REPEAT_WINDOW_SECONDS must be 0 or more.")
PANEL_FUNDS_INSTRUCTIONS = env("PANEL_FUNDS_INSTRUCTIONS", default="")

# Resellers' webhooks (docs/webhooks.md): whether deliveries may go to loopback, private,
# link-local and other non-public addresses (checked after DNS resolution). Only for
# development and tests: on a server it would let customers make the panel call its own network.
PANEL_WEBHOOKS_ALLOW_PRIVATE = env.bool("PANEL_WEBHOOKS_ALLOW_PRIVATE", default=DEBUG)
# Delivered and given-up webhook events older than this many days are deleted every night
# ("Retention" schedules; 0 keeps them all). The API page shows the last 50 either way.
PANEL_WEBHOOK_EVENT_DAYS = env.int("PANEL_WEBHOOK_EVENT_DAYS", default=30)
if PANEL_WEBHOOK_EVENT_DAYS < 0:
    raise ImproperlyConfigured("PANEL_WEBHOOK_EVENT_DAYS must be 0 or more.")

# --- Payments (docs/payments.md) -------------------------------------------------------------
# The methods offered on the Add funds page, in this order; each shows only when configured
# below (and not switched off by staff in admin → Payment method settings).
PAYMENT_METHODS = env.list("PAYMENT_METHODS", default=["stripe", "cryptomus", "paypal", "manual"])
# Manual transfer: the customer submits amount + reference, staff approve it in admin.
PAYMENT_MANUAL_ENABLED = env.bool("PAYMENT_MANUAL_ENABLED", default=True)
# A payment still created / waiting this long after it was made is marked expired.
PAYMENT_EXPIRE_HOURS = env.int("PAYMENT_EXPIRE_HOURS", default=48)
# Payments a customer may start per hour (each one creates a checkout at a gateway).
PAYMENT_STARTS_PER_HOUR = env.int("PAYMENT_STARTS_PER_HOUR", default=20)
# Stripe Checkout: the secret key, the webhook's signing secret (Dashboard → Webhooks, endpoint
# <PANEL_PUBLIC_URL>/payments/stripe/webhook/) and the API's address (a fake one in the demo).
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env("STRIPE_API_BASE", default="https://api.stripe.com")
# Cryptomus (Heleket speaks the same API: set its address): merchant id and payment API key.
CRYPTOMUS_MERCHANT_ID = env("CRYPTOMUS_MERCHANT_ID", default="")
CRYPTOMUS_PAYMENT_KEY = env("CRYPTOMUS_PAYMENT_KEY", default="")
CRYPTOMUS_API_BASE = env("CRYPTOMUS_API_BASE", default="https://api.cryptomus.com")
# PayPal Orders v2: the REST app's client id and secret, the webhook's id (for verification)
# and the API's address (https://api-m.paypal.com live, https://api-m.sandbox.paypal.com test).
PAYPAL_CLIENT_ID = env("PAYPAL_CLIENT_ID", default="")
PAYPAL_CLIENT_SECRET = env("PAYPAL_CLIENT_SECRET", default="")
PAYPAL_WEBHOOK_ID = env("PAYPAL_WEBHOOK_ID", default="")
PAYPAL_API_BASE = env("PAYPAL_API_BASE", default="https://api-m.paypal.com")
# --- Referrals (docs/growth.md) ----------------------------------------------------------------
# What commission is a percentage of: each paid deposit of a referred customer ("deposit") or
# each order charge, net of its refund ("spend"). The rate itself is staff's (admin → Referral
# programme, 5 % by default; a referrer's own rate wins).
REFERRAL_COMMISSION_BASE = env("REFERRAL_COMMISSION_BASE", default="deposit")
if REFERRAL_COMMISSION_BASE not in ("deposit", "spend"):
    raise ImproperlyConfigured('REFERRAL_COMMISSION_BASE must be "deposit" or "spend".')
# Commission is held this many days (the chargeback window) before it can be used.
REFERRAL_HOLD_DAYS = env.int("REFERRAL_HOLD_DAYS", default=14)
# The first referral link a visitor followed counts for this many days (a cookie).
REFERRAL_COOKIE_DAYS = env.int("REFERRAL_COOKIE_DAYS", default=30)
# The smallest payout a referrer may ask for, in the panel currency.
try:
    REFERRAL_PAYOUT_MINIMUM = Decimal(env("REFERRAL_PAYOUT_MINIMUM", default="10"))
except InvalidOperation:
    raise ImproperlyConfigured("REFERRAL_PAYOUT_MINIMUM must be an amount, e.g. 10.") from None
if REFERRAL_HOLD_DAYS < 0 or REFERRAL_COOKIE_DAYS < 1 or not REFERRAL_PAYOUT_MINIMUM > 0:
    raise ImproperlyConfigured(
        "REFERRAL_HOLD_DAYS must be 0 or more, REFERRAL_COOKIE_DAYS 1 or more and "
        "REFERRAL_PAYOUT_MINIMUM more than 0."
    )
# A sign-up is not attributed when its e-mail domain is the referrer's and matches this regular
# expression (by default: any domain but the big free mail providers, which strangers share).
# Empty turns the check off. The same address (+tags and Gmail's dots ignored) is always refused.
REFERRAL_SELF_EMAIL_DOMAIN_PATTERN = env(
    "REFERRAL_SELF_EMAIL_DOMAIN_PATTERN",
    default=r"^(?!(gmail|googlemail|yahoo|outlook|hotmail|live|icloud|me|aol|proton|protonmail"
    r"|gmx|mail|yandex|qq|163)\.).+$",
)
try:
    re.compile(REFERRAL_SELF_EMAIL_DOMAIN_PATTERN)
except re.error as exc:
    raise ImproperlyConfigured(f"REFERRAL_SELF_EMAIL_DOMAIN_PATTERN: {exc}") from None
# A sign-up from an address the referrer logged in from among their last this many logins is
# refused as a self-referral.
REFERRAL_SELF_IP_LOGINS = env.int("REFERRAL_SELF_IP_LOGINS", default=20)

# Security page: e-mail a customer when they log in from an address they never logged in from
# before; how often a session's "last seen" is written (seconds); how long the login history
# is kept (days; `python manage.py cleanup_login_history` deletes older rows, 0 keeps all).
PANEL_NEW_LOGIN_EMAIL = env.bool("PANEL_NEW_LOGIN_EMAIL", default=True)
PANEL_SESSION_SEEN_SECONDS = env.int("PANEL_SESSION_SEEN_SECONDS", default=300)
PANEL_LOGIN_HISTORY_DAYS = env.int("PANEL_LOGIN_HISTORY_DAYS", default=365)
if PANEL_SESSION_SEEN_SECONDS < 0 or PANEL_LOGIN_HISTORY_DAYS < 0:
    raise ImproperlyConfigured(
        "PANEL_SESSION_SEEN_SECONDS and PANEL_LOGIN_HISTORY_DAYS must be 0 or more."
    )

# Notices read more than this many days ago are deleted by `python manage.py
# cleanup_notifications` (0 keeps them all; unread ones are always kept).
PANEL_NOTIFICATION_DAYS = env.int("PANEL_NOTIFICATION_DAYS", default=180)
if PANEL_NOTIFICATION_DAYS < 0:
    raise ImproperlyConfigured("PANEL_NOTIFICATION_DAYS must be 0 or more.")

# Support tickets (docs/support.md): tickets a customer may have not closed at once, tickets
# they may open and messages they may write per hour (counted in the cache).
SUPPORT_MAX_OPEN_TICKETS = env.int("SUPPORT_MAX_OPEN_TICKETS", default=5)
SUPPORT_TICKETS_PER_HOUR = env.int("SUPPORT_TICKETS_PER_HOUR", default=10)
SUPPORT_REPLIES_PER_HOUR = env.int("SUPPORT_REPLIES_PER_HOUR", default=30)
if min(SUPPORT_MAX_OPEN_TICKETS, SUPPORT_TICKETS_PER_HOUR, SUPPORT_REPLIES_PER_HOUR) < 1:
    raise ImproperlyConfigured(
        "SUPPORT_MAX_OPEN_TICKETS, SUPPORT_TICKETS_PER_HOUR and SUPPORT_REPLIES_PER_HOUR must be "
        "1 or more."
    )

# Orders: stop polling and hand to the admin after this age; an order stuck mid-placement
# goes to review after this long; how often orders waiting for provider funds are retried.
ORDER_MAX_POLL_AGE = timedelta(days=env.int("ORDER_MAX_POLL_AGE_DAYS", default=30))
ORDER_SUBMIT_STUCK_AFTER = timedelta(minutes=env.int("ORDER_SUBMIT_STUCK_MINUTES", default=10))
ORDER_FUNDS_RETRY_AFTER = timedelta(minutes=env.int("ORDER_FUNDS_RETRY_MINUTES", default=10))

# Admin cockpit: an order still queued / pending / in progress this long after it was placed
# is listed as stuck; the past days' figures are cached this many seconds (0: no cache).
ATTENTION_STUCK_HOURS = env.int("ATTENTION_STUCK_HOURS", default=24)
COCKPIT_CACHE_SECONDS = env.int("COCKPIT_CACHE_SECONDS", default=300)

# A sync that would remove more than this share of a provider's known services is refused (a
# provider answering half its catalog under load must not disable half the panel).
CATALOG_SYNC_MAX_REMOVED_PERCENT = env.int("CATALOG_SYNC_MAX_REMOVED_PERCENT", default=50)

# --- Logging ----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}
