"""The settings mypy's django-stubs plugin imports ([tool.django-stubs] in pyproject.toml).

The plugin imports the settings to learn the models. panel/settings.py rightly refuses to load
with DEBUG off and no SECRET_KEY, ALLOWED_HOSTS or FIELD_ENCRYPTION_KEYS; type checking needs
none of them, so this module fills the missing ones with throwaway values made at import time
(never a fixed secret) and then loads the real settings. Values already in the environment win.
Only for type checking: never point DJANGO_SETTINGS_MODULE at this module.
"""

import os
import secrets

from cryptography.fernet import Fernet

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ALLOWED_HOSTS", "localhost")
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", Fernet.generate_key().decode())

from panel.settings import *  # noqa: F403
