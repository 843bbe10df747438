from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import payment_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("password-reset/", views.ThrottledPasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("account/", views.account_settings, name="account_settings"),
    path("account/security/", views.account_security, name="account_security"),
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
    path("api/", views.api_docs, name="api_docs"),
    path("api/allowlist/", views.api_key_allowlist, name="api_key_allowlist"),
]
