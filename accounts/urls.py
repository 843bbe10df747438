from django.urls import path

from accounts import notification_views, payment_views, referral_views, views

# The panel's auth pages before django-allauth (mounted at /accounts/ in panel/urls.py) keep
# their paths and names: each sends the browser on to allauth's page (views.moved_to).
MOVED = [
    path("login/", views.moved_to("account_login"), name="login"),
    path("logout/", views.moved_to("account_logout"), name="logout"),
    path("signup/", views.moved_to("account_signup"), name="signup"),
    path("password-reset/", views.moved_to("account_reset_password"), name="password_reset"),
    path(
        "password-reset/sent/",
        views.moved_to("account_reset_password_done"),
        name="password_reset_done",
    ),
    # An old reset link's token is not allauth's: it leads to the form that mails a new one.
    path(
        "password-reset/<uidb64>/<token>/",
        views.moved_to("account_reset_password"),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        views.moved_to("account_reset_password_from_key_done"),
        name="password_reset_complete",
    ),
]

urlpatterns = [
    path("", views.home, name="home"),
    *MOVED,
    path("account/", views.account_settings, name="account_settings"),
    # The language switch: Django's set_language (django.conf.urls.i18n's path and name), which
    # also saves a signed-in customer's choice.
    path("i18n/setlang/", views.set_language, name="set_language"),
    path("account/security/", views.account_security, name="account_security"),
    path("account/theme/", views.theme_set, name="theme_set"),
    path(
        "account/security/sessions/<int:session_id>/end/",
        views.account_session_end,
        name="account_session_end",
    ),
    path(
        "account/security/sessions/end-others/",
        views.account_sessions_end_others,
        name="account_sessions_end_others",
    ),
    path(
        "account/notifications/",
        notification_views.notification_settings,
        name="notification_settings",
    ),
    path(
        "account/notifications/unsubscribe/<str:token>/",
        notification_views.notification_unsubscribe_view,
        name="notification_unsubscribe",
    ),
    path("notifications/", notification_views.notification_list, name="notifications"),
    path("notifications/menu/", notification_views.notification_menu, name="notification_menu"),
    path(
        "notifications/<int:notification_id>/open/",
        notification_views.notification_open,
        name="notification_open",
    ),
    path(
        "notifications/read-all/",
        notification_views.notification_read_all,
        name="notification_read_all",
    ),
    path("funds/", views.funds, name="funds"),
    path("funds/statement.csv", views.funds_csv, name="funds_csv"),
    path("funds/add/", payment_views.funds_add, name="funds_add"),
    path(
        "funds/payments/<uuid:public_id>/",
        payment_views.payment_detail,
        name="payment_detail",
    ),
    path(
        "funds/payments/<uuid:public_id>/cancel/",
        payment_views.payment_cancel,
        name="payment_cancel",
    ),
    path("payments/<slug:method>/webhook/", payment_views.webhook, name="payment_webhook"),
    path("r/<str:code>", referral_views.referral_link, name="referral_link"),
    path("referrals/", referral_views.referrals, name="referrals"),
    path("referrals/transfer/", referral_views.referral_transfer, name="referral_transfer"),
    path("referrals/payout/", referral_views.referral_payout, name="referral_payout"),
    path("api/", views.api_docs, name="api_docs"),
    path("api/allowlist/", views.api_key_allowlist, name="api_key_allowlist"),
    path("api/webhook/", views.api_webhook_set, name="api_webhook_set"),
    path("api/webhook/rotate/", views.api_webhook_rotate, name="api_webhook_rotate"),
    path("api/webhook/remove/", views.api_webhook_remove, name="api_webhook_remove"),
    path("api/webhook/test/", views.api_webhook_test, name="api_webhook_test"),
]
