"""RFC 6238 time-based one-time codes, computed here and not by allauth: a test that logs in
with a code must not take it from the code it checks."""

import base64
import hashlib
import hmac
import struct
import time


def totp_code(secret: str, *, at: float | None = None, step: int = 30, digits: int = 6) -> str:
    """The code an authenticator app shows for a base32 `secret` at time `at` (now)."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // step)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def give_second_factor(user) -> str:
    """Activate an authenticator app (allauth.mfa TOTP) for `user`; returns its secret. Staff
    open the admin only with one (accounts.middleware.AdminTwoFactorMiddleware)."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def secret_of(user) -> str:
    """The base32 secret of the user's authenticator app, as the app would hold it."""
    from allauth.mfa.models import Authenticator
    from allauth.mfa.utils import decrypt

    authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
    return decrypt(authenticator.data["secret"])


def log_in_with_code(page, *, login: str, password: str, secret: str) -> None:
    """In a browser on allauth's login page: the password, then the authenticator's code."""
    page.fill("#id_login", login)
    page.fill("#id_password", password)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url("**/2fa/authenticate/**")
    page.fill("#id_code", totp_code(secret))
    page.get_by_role("button", name="Sign In").click()
