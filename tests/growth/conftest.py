from tests.api.conftest import _api_settings, alice_key  # noqa: F401  (the API's fixtures)
