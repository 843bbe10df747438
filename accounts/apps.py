from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Customers and money"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
        from django.db.models.signals import post_save

        from accounts import (
            checks,  # noqa: F401  (registers the system checks)
            security,
        )

        # The login history and the session list (accounts/security.py): Django's own auth
        # signals, which django-allauth sends too, whichever views do the logging in.
        user_logged_in.connect(security.on_user_logged_in, dispatch_uid="accounts.login_history")
        user_login_failed.connect(
            security.on_user_login_failed, dispatch_uid="accounts.login_history_failed"
        )
        user_logged_out.connect(security.on_user_logged_out, dispatch_uid="accounts.sessions_out")
        post_save.connect(
            security.on_user_saved, sender=get_user_model(), dispatch_uid="accounts.password_ends"
        )
