"""Fake payment gateways for development and tests: one standard-library HTTP server that
speaks enough of Stripe's, Cryptomus' and PayPal's APIs for the panel's gateway modules (and
the official SDKs they use), serves a checkout page with Pay and Cancel, and then posts the
webhook signed exactly as the real gateway does. It imports nothing of the panel: it is the
other side of the wire. `python manage.py run_fake_gateways` starts it (never with DEBUG off);
tests use accounts.fake_gateways.testing.FakeGatewaysServer. See docs/payments.md."""
