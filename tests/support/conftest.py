import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _support_isolated(settings):
    """The rate limits' counts (in the cache) start at zero, whatever earlier runs with the
    same user ids left there (tests/conftest.py gives each test its own MEDIA_ROOT)."""
    settings.SUPPORT_MAX_OPEN_TICKETS = 5
    settings.SUPPORT_TICKETS_PER_HOUR = 10
    settings.SUPPORT_REPLIES_PER_HOUR = 30
    cache.clear()
    yield
    cache.clear()
