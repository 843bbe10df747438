"""The language of the customer panel (docs/customer-panel.md, "Languages"): the switch, the
order the language is chosen in (the customer's saved choice, the cookie, Accept-Language),
pages and mails in each language, and /api/v2 that stays English."""

from decimal import Decimal

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.models import Notification
from accounts.notifications import notify
from accounts.services import api_key_issue

pytestmark = pytest.mark.django_db

E = Notification.Event
COOKIE = settings.LANGUAGE_COOKIE_NAME


def _text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_an_anonymous_visitor_switches_with_the_cookie(client):
    response = client.post(reverse("set_language"), {"language": "es", "next": "/terms/"})
    assert response.status_code == 302 and response["Location"] == "/terms/"
    assert response.cookies[COOKIE].value == "es"
    page = client.get("/")
    assert page["Content-Language"] == "es"
    text = _text(page)
    assert '<html lang="es" ' in text
    assert "Iniciar sesión" in text and "Crear una cuenta" in text
    assert ">Log in<" not in text


def test_without_a_choice_the_browser_language_is_used(client):
    assert "Войти" in _text(client.get("/", HTTP_ACCEPT_LANGUAGE="ru,en;q=0.5"))
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="pt-BR,pt;q=0.9")
    assert page["Content-Language"] == "pt-br" and "Criar uma conta" in _text(page)
    # A language the panel does not speak: English.
    assert "Create an account" in _text(client.get("/", HTTP_ACCEPT_LANGUAGE="de-DE"))
    # The cookie wins over the browser's header.
    client.cookies[COOKIE] = "es"
    assert "Crear una cuenta" in _text(client.get("/", HTTP_ACCEPT_LANGUAGE="ru"))


def test_a_customer_choice_is_saved_and_follows_them_to_another_device(client, alice):
    client.force_login(alice)
    response = client.post(reverse("set_language"), {"language": "ru", "next": "/account/"})
    assert response.status_code == 302 and response.cookies[COOKIE].value == "ru"
    alice.refresh_from_db()
    assert alice.language == "ru"
    # Another browser: no cookie, a Spanish Accept-Language; the account's choice wins.
    other = Client(HTTP_ACCEPT_LANGUAGE="es")
    other.force_login(alice)
    other.cookies[COOKIE] = "pt-br"
    text = _text(other.get("/account/"))
    assert "Настройки аккаунта" in text and "Account settings" not in text
    assert '<option value="ru" lang="ru" selected>' in text


def test_an_unknown_language_is_neither_saved_nor_set(client, alice):
    client.force_login(alice)
    response = client.post(reverse("set_language"), {"language": "xx", "next": "/account/"})
    assert response.status_code == 302 and COOKIE not in response.cookies
    alice.refresh_from_db()
    assert alice.language == ""
    assert client.get(reverse("set_language")).status_code == 405  # a POST form only


def test_the_switch_is_in_the_footer_and_on_the_settings_page(client, alice):
    text = _text(client.get("/faq/"))
    assert f'action="{reverse("set_language")}"' in text
    assert '<input type="hidden" name="next" value="/faq/">' in text
    for code, name in settings.LANGUAGES:
        assert f'<option value="{code}" lang="{code}"' in text and name in text
    client.force_login(alice)
    text = _text(client.get("/account/"))
    assert 'id="settings-language"' in text and 'id="footer-language"' in text


def test_signing_up_keeps_the_language_of_the_page(client):
    client.cookies[COOKIE] = "pt-br"
    response = client.post(
        reverse("account_signup"),
        {
            "username": "carla",
            "email": "carla@example.com",
            "password1": "a-Long-pass-2026",
            "password2": "a-Long-pass-2026",
            "accept_terms": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    from accounts.models import User

    assert User.objects.get(username="carla").language == "pt-br"


CUSTOMER_PAGES = [
    "/",
    "/account/",
    "/account/security/",
    "/account/notifications/",
    "/notifications/",
    "/orders/",
    "/order/",
    "/mass-order/",
    "/services/",
    "/funds/",
    "/funds/add/",
    "/referrals/",
    "/api/",
    "/tickets/",
    "/tickets/new/",
    "/news/",
]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("es", ["Configuración de la cuenta", "Nuevo pedido", "Zona horaria", "Saldo:"]),
        ("pt-br", ["Configurações da conta", "Novo pedido", "Fuso horário", "Saldo:"]),
        ("ru", ["Настройки аккаунта", "Новый заказ", "Часовой пояс", "Баланс:"]),
    ],
)
def test_the_pages_speak_each_language(client, alice, code, expected):
    alice.language = code
    alice.save(update_fields=["language"])
    client.force_login(alice)
    for url in CUSTOMER_PAGES:
        page = client.get(url)
        assert page.status_code == 200, url
        assert page["Content-Language"] == code, url
    text = _text(client.get("/account/"))
    for phrase in expected:
        assert phrase in text, phrase
    for english in ("Account settings", "New order", "Time zone", "Balance:"):
        assert english not in text, english


def test_plurals_follow_each_language(client, alice):
    """Russian has three forms for whole numbers (1 день, 3 дня, 5 дней)."""
    with translation.override("ru"):
        assert (
            translation.ngettext(
                "%(count)d other session ended: only this device is still logged in.",
                "%(count)d other sessions ended: only this device is still logged in.",
                5,
            )
            % {"count": 5}
            == "Завершено 5 других сеансов: вход выполнен только на этом устройстве."
        )
        assert (
            translation.ngettext(
                "%(count)d other session ended: only this device is still logged in.",
                "%(count)d other sessions ended: only this device is still logged in.",
                3,
            )
            % {"count": 3}
            == "Завершено 3 других сеанса: вход выполнен только на этом устройстве."
        )
    with translation.override("es"):
        assert translation.ngettext("%(count)s service", "%(count)s services", 1) == (
            "%(count)s servicio"
        )


def _api(client: Client, **headers) -> bytes:
    return client.post("/api/v2", {"action": "status", "order": "abc"}, **headers).content


def test_api_v2_answers_stay_english_whatever_the_language(client, alice):
    raw = api_key_issue(user=alice).raw
    calls = [
        {"key": raw, "action": "status", "order": "abc"},
        {"key": raw, "action": "steal"},
        {"key": "wrong", "action": "balance"},
        {"key": raw, "action": "add", "service": "999999", "link": "x", "quantity": "10"},
    ]
    english = [client.post("/api/v2", data).content for data in calls]
    alice.language = "ru"
    alice.save(update_fields=["language"])
    russian = Client(HTTP_ACCEPT_LANGUAGE="ru")
    russian.cookies[COOKIE] = "ru"
    answers = [russian.post("/api/v2", data) for data in calls]
    assert [a.content for a in answers] == english
    assert all(a["Content-Language"] == "en" for a in answers)
    assert b"Incorrect" in english[0] or b"error" in english[0]


def test_a_notification_mail_is_in_the_recipient_language(
    alice, bob, django_capture_on_commit_callbacks
):
    alice.language = "ru"
    alice.save(update_fields=["language"])
    context = {
        "order_id": 12,
        "status": "Partial",
        "refund": Decimal("1.50000"),
        "charge": Decimal("3.00000"),
        "remains": 50,
        "quantity": 100,
        "target": "https://example.com/p",
    }
    # Whatever language the request that caused it speaks (here Spanish), each recipient
    # reads theirs: alice chose Russian, bob chose nothing (the panel's default, English).
    with translation.override("es"), django_capture_on_commit_callbacks(execute=True):
        notice = notify(user=alice, event=E.ORDER_REFUNDED, context=context)
        notify(user=bob, event=E.ORDER_REFUNDED, context=context)
    russian, english = mail.outbox
    assert russian.to == ["alice@example.com"]
    assert russian.subject.endswith("Заказ 12 — Частично: возвращено $1.50")
    assert "Здравствуйте, alice!" in russian.body
    assert "Заказ 12 (https://example.com/p) завершён со статусом «Частично»." in russian.body
    assert "Не доставлено 50 из 100." in russian.body
    html = russian.alternatives[0][0]
    assert '<html lang="ru">' in html and "Открыть заказ" in html
    assert "Order" not in russian.body.split("--")[0]
    # The bell shows the same words; the stored context stays plain data.
    assert notice.title == "Заказ 12 — Частично: возвращено $1.50"
    assert notice.context["status"] == "Partial"
    assert english.to == ["bob@example.com"]
    assert english.subject.endswith("Order 12 Partial: $1.50 refunded")
    assert "Hello bob," in english.body and "50 of 100 were not delivered." in english.body


def test_numbers_for_the_page_script_stay_machine_numbers_in_every_language(
    client, alice, settings
):
    """Spanish writes 2,50 where English writes 2.50: shown to people that is right, but the
    add-funds script reads the fee from a data attribute, where "2,50" would be NaN."""
    from accounts.models import PaymentMethodSetting

    settings.PAYMENT_METHODS = ["manual"]
    PaymentMethodSetting.objects.create(method="manual", fee_percent=Decimal("2.5"))
    alice.language = "es"
    alice.save(update_fields=["language"])
    client.force_login(alice)
    text = _text(client.get(reverse("funds_add")))
    assert 'data-fee-percent="2.50"' in text
    assert "comisión del 2,50 % adicional" in text  # the sentence people read: Spanish
    assert "Transferencia bancaria (confirmada por el equipo)" in text
    assert 'data-fee-text="Pagas {total}: {amount} + {fee} de comisión"' in text
