"""The panel's hooks into django-allauth (settings.ACCOUNT_ADAPTER): the client's address as
the rest of the panel reads it, and a new sign-up saved as a customer with a wallet (and
attributed to its referrer, docs/growth.md), speaking the language it signed up in."""

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from allauth.account.stages import EmailVerificationStage
from django.conf import settings
from django.db import transaction
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.utils import translation

from accounts.models import User
from accounts.payments import payment_methods_offered
from accounts.ratelimit import client_ip
from accounts.referrals import referral_attribute_signup, referral_cookie_visit_id
from accounts.services import customer_save_new


class PanelAccountAdapter(DefaultAccountAdapter):
    def get_client_ip(self, request: HttpRequest) -> str:
        """allauth's rate limits count per address: the address accounts.ratelimit.client_ip
        reads (API_CLIENT_IP_HEADER behind a proxy), not a header any client may write."""
        return client_ip(request) or super().get_client_ip(request)

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        """Failed logins count per (login, address), as the panel's own throttle did: counted per
        login alone, a guesser anywhere could lock the customer out of their account. The
        per-address count (ACCOUNT_RATE_LIMITS "login_failed" .../ip) stops one address from
        walking through many logins. (allauth 65.22's hook; the version is pinned.)"""
        return f"{super()._get_login_attempts_cache_key(request, **credentials)}:{self.get_client_ip(request)}"

    def save_user(
        self, request: HttpRequest, user: Any, form: BaseForm, commit: bool = True
    ) -> Any:
        user = super().save_user(request, user, form, commit=False)
        # The language the sign-up page was shown in (the switch's cookie, or the browser's)
        # becomes the account's: the verification mail and every later one are in it.
        language = translation.get_language() or ""
        if language in dict(settings.LANGUAGES):
            user.language = language
        if commit:
            with transaction.atomic():
                customer_save_new(user=user)
                # The first referral link this browser followed (docs/growth.md).
                referral_attribute_signup(
                    user=user, visit_id=referral_cookie_visit_id(request), ip=client_ip(request)
                )
        return user

    def get_signup_redirect_url(self, request: HttpRequest) -> str:
        """A new customer lands on Add funds (ACCOUNT_SIGNUP_REDIRECT_URL) when there is a way
        to pay; before staff configured any payment method, on the home page instead, which
        works without one (a page that only says "no method yet" is no welcome)."""
        if payment_methods_offered():
            return super().get_signup_redirect_url(request)
        return resolve_url("home")

    def get_login_stages(self) -> list[str]:
        allauth_stage = "allauth.account.stages.EmailVerificationStage"
        return [
            "accounts.adapter.AddressOrNoneVerificationStage" if stage == allauth_stage else stage
            for stage in super().get_login_stages()
        ]


class AddressOrNoneVerificationStage(EmailVerificationStage):
    """allauth's verification stage, except for an account that has no e-mail address at all
    (staff made with createsuperuser, customers made without one): there is nothing to verify,
    and under "mandatory" allauth would shut it out for good."""

    def handle(self) -> tuple[HttpResponse | None, bool]:
        user: User | None = self.login.user
        if (
            user is not None
            and not user.email
            and not EmailAddress.objects.filter(user_id=user.pk).exists()
        ):
            return None, True
        response, cont = super().handle()
        return response, cont
