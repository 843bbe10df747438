"""Issue 17's money parts on the pages: the one money format (the `money` filter), the display
currency, the visitor's home page built from the catalog, the sign-up landing."""

import csv
import io
import re
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import DisplayCurrency, User
from accounts.services import DisplayCurrencyError, balance_adjust, user_set_display_currency
from catalog.models import Category, Service
from catalog.pricing import DisplayRate
from catalog.selectors import SHOWCASE_CACHE_KEY, category_showcase

pytestmark = pytest.mark.django_db


# --- the filter --------------------------------------------------------------------------------


def _render(source: str, **context) -> str:
    return Template("{% load panel_ui %}" + source).render(Context(context))


def test_money_filter_formats_in_the_panel_currency(settings):
    settings.PANEL_CURRENCY = "USD"
    assert _render("{{ x|money }}", x=Decimal("100.00000")) == "$100.00"
    assert _render("{{ x|money }}", x=Decimal("97.85425")) == "$97.85425"
    assert _render('{{ x|money:"signed" }}', x=Decimal("0.5229")) == "+$0.5229"
    assert _render('{{ x|money:"signed" }}', x=Decimal("-1.575")) == "-$1.575"
    assert _render("{{ x|signed_money }}", x=Decimal("-1.575")) == "-$1.575"
    assert _render("{{ x|money:c }}", x=Decimal("12.5"), c="EUR") == "€12.50"
    assert _render("{{ x|money }}", x=None) == ""
    assert _render("{{ x|rate }}", x=Decimal("0.00350000")) == "$0.0035"
    settings.PANEL_CURRENCY = "TRY"
    assert _render("{{ x|money }}", x=Decimal("12.5")) == "₺12.50"


def test_money_filter_with_a_display_currency():
    eur = DisplayRate("EUR", Decimal("0.921"))
    assert _render("{{ x|money:d }}", x=Decimal("100"), d=eur) == "€92.10 ($100.00)"
    assert _render("{{ x|rate:d }}", x=Decimal("2"), d=eur) == "€1.842 ($2.00)"
    assert _render("{{ x|money:d }}", x=Decimal("100"), d=None) == "$100.00"


# --- the display currency ----------------------------------------------------------------------


@pytest.fixture
def eur(db):
    return DisplayCurrency.objects.create(code="EUR", rate=Decimal("0.9"))


def test_balance_and_prices_show_in_the_display_currency(alice_client, alice, eur, default_service):
    user_set_display_currency(user=alice, code="EUR")
    home = alice_client.get(reverse("home")).content.decode()
    assert "€45.00 ($50.00)" in home  # alice's 50.00 in the header and the balance card
    services = alice_client.get(reverse("services")).content.decode()
    assert "€1.80 ($2.00)" in services  # the service's 2.00 per 1000
    funds = alice_client.get(reverse("funds")).content.decode()
    assert "€45.00 ($50.00)" in funds
    assert "+$50.00" in funds  # the statement's entries stay in the panel's currency
    assert "€45.00 (" not in funds.split('data-testid="balance"', 1)[1].split("</p>", 1)[1]


def test_without_a_display_currency_the_panel_currency_alone(alice_client):
    home = alice_client.get(reverse("home")).content.decode()
    assert "$50.00" in home and "USD" not in home.split("<main", 1)[1].split("</main>")[0]


def test_a_disabled_display_currency_falls_back_to_the_panel_currency(alice_client, alice, eur):
    user_set_display_currency(user=alice, code="EUR")
    eur.enabled = False
    eur.save()
    home = alice_client.get(reverse("home")).content.decode()
    assert "$50.00" in home and "€" not in home


def test_customer_chooses_the_display_currency_in_settings(alice_client, alice, eur):
    page = alice_client.get(reverse("account_settings")).content.decode()
    assert 'value="EUR"' in page and "€0.90 for $1.00" in page
    response = alice_client.post(
        reverse("account_settings"), {"form": "currency", "cur-display_currency": "EUR"}
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.display_currency == "EUR" and alice.timezone == "UTC"  # the other form untouched
    response = alice_client.post(
        reverse("account_settings"), {"form": "currency", "cur-display_currency": "GBP"}
    )
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    alice_client.post(reverse("account_settings"), {"form": "currency", "cur-display_currency": ""})
    alice.refresh_from_db()
    assert alice.display_currency == ""


def test_settings_hides_the_choice_when_staff_offer_none(alice_client):
    assert "Display currency" not in alice_client.get(reverse("account_settings")).content.decode()


def test_set_display_currency_refuses_one_not_offered(alice, eur):
    with pytest.raises(DisplayCurrencyError, match="GBP is not one of the currencies offered"):
        user_set_display_currency(user=alice, code="gbp")
    assert user_set_display_currency(user=alice, code="eur").display_currency == "EUR"


def test_display_currency_model_checks_its_code(eur, settings):
    from django.core.exceptions import ValidationError

    for code, message in (("EU", "Three letters"), ("USD", "panel's own currency")):
        with pytest.raises(ValidationError, match=message):
            DisplayCurrency(code=code, rate=Decimal("1")).full_clean()


# --- statement CSV and messages ----------------------------------------------------------------


def test_statement_csv_amounts_are_plain_numbers_with_the_currency(alice_client, alice, staff):
    balance_adjust(user=alice, amount=Decimal("-1.575"), created_by=staff, reason="fix")
    body = b"".join(alice_client.get(reverse("funds_csv")).streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert [row[3:5] + row[-1:] for row in rows] == [
        ["amount", "balance_after", "currency"],
        ["50.00", "50.00", "USD"],  # the same decimals as the page, numbers a spreadsheet reads
        ["-1.575", "48.425", "USD"],
    ]


# --- home page ---------------------------------------------------------------------------------


@pytest.fixture
def catalog_rows(db):
    insta = Category.objects.create(name="Instagram", sort_order=1)
    tiktok = Category.objects.create(name="TikTok", sort_order=2)
    hidden = Category.objects.create(name="Hidden", sort_order=0, is_enabled=False)
    Category.objects.create(name="Empty", sort_order=3)
    for category, rate, kind, enabled in (
        (insta, "2.50", "Default", True),
        (insta, "0.45", "Default", True),
        (insta, "0.01", "Package", True),  # per package: not a price per 1000
        (insta, "0.02", "Default", False),  # not on sale
        (tiktok, "1.20", "Default", True),
        (hidden, "0.10", "Default", True),
    ):
        Service.objects.create(
            name=f"{category.name} {rate}",
            category=category,
            type=kind,
            min=10,
            max=1000,
            rate=Decimal(rate),
            is_enabled=enabled,
        )


def test_home_page_sells_from_the_catalog(client, catalog_rows):
    cache.delete(SHOWCASE_CACHE_KEY)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("home"))
    assert response.status_code == 200
    body = response.content.decode()
    showcase = body.split('data-testid="showcase"', 1)[1].split("</ul>", 1)[0]
    assert "Instagram" in showcase and "TikTok" in showcase
    assert "Hidden" not in showcase and "Empty" not in showcase
    assert "3 services" in showcase and "from <strong>$0.45</strong> per 1000" in showcase
    assert "from <strong>$1.20</strong> per 1000" in showcase
    assert showcase.index("Instagram") < showcase.index("TikTok")  # the catalog's order
    for part in ("How ordering works", "For resellers: the API", "/api/v2"):
        assert part in body
    for name in ("account_signup", "account_login", "faq", "terms", "api_docs"):
        assert f'href="{reverse(name)}"' in body
    assert not re.search(r'(src|href)="(https?:)?//', body)  # no outside assets
    catalog_queries = [q for q in queries.captured_queries if "catalog_" in q["sql"]]
    assert len(catalog_queries) == 1, catalog_queries
    with CaptureQueriesContext(connection) as again:
        client.get(reverse("home"))
    assert not [q for q in again.captured_queries if "catalog_" in q["sql"]]  # cached


def test_home_page_with_an_empty_catalog(client):
    body = client.get(reverse("home")).content.decode()
    assert "The catalog is being set up" in body and category_showcase() == []


def test_customer_home_keeps_the_dashboard(alice_client):
    body = alice_client.get(reverse("home")).content.decode()
    assert "Hello, alice" in body and "Recent orders" in body and "How ordering works" not in body


# --- sign-up landing ---------------------------------------------------------------------------

SIGNUP = {
    "username": "carol",
    "email": "carol@example.com",
    "password1": "a-long-Passphrase-9",
    "password2": "a-long-Passphrase-9",
    "accept_terms": "on",
}


def test_signup_without_payment_methods_lands_on_a_working_home(client, settings):
    settings.PAYMENT_METHODS = []
    response = client.post(reverse("account_signup"), SIGNUP)
    assert response.status_code == 302 and response["Location"] == reverse("home")
    page = client.get(response["Location"])
    assert page.status_code == 200 and "Hello, carol" in page.content.decode()
    assert User.objects.get(username="carol").wallet.balance == 0


def test_signup_with_a_payment_method_lands_on_add_funds(client, settings):
    settings.PAYMENT_METHODS = ["manual"]
    response = client.post(reverse("account_signup"), SIGNUP)
    assert response.status_code == 302 and response["Location"] == reverse("funds_add")
    assert client.get(response["Location"]).status_code == 200


def test_logout_by_get_shows_a_page_with_a_log_out_button(alice_client):
    response = alice_client.get("/logout/", follow=True)
    body = response.content.decode()
    assert response.status_code == 200
    assert 'method="post"' in body and f'action="{reverse("account_logout")}"' in body
    assert ">Log out<" in body.replace("\n", "")


# --- admin -------------------------------------------------------------------------------------


def test_admin_lists_show_money_in_the_format(client, staff, alice):
    client.force_login(staff)
    ledger = client.get(reverse("admin:accounts_ledgerentry_changelist")).content.decode()
    assert "+$50.00" in ledger and "50.00000" not in ledger
    # The money column sorts by its field.
    ordered = client.get(reverse("admin:accounts_ledgerentry_changelist") + "?o=5")
    assert ordered.status_code == 200
    payments = client.get(reverse("admin:accounts_payment_changelist"))
    orders = client.get(reverse("admin:orders_order_changelist"))
    assert payments.status_code == 200 and orders.status_code == 200


def test_admin_service_list_shows_rates_in_the_format(client, staff, default_service):
    client.force_login(staff)
    page = client.get(reverse("admin:catalog_service_changelist")).content.decode()
    # Rate 2.00, cost 1.0 (upstream rate at exchange rate 1), margin +1.00.
    assert "$2.00" in page and "$1.00" in page and "+$1.00" in page
    assert "2.00000000" not in page
