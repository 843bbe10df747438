"""Support in a real browser: a customer opens an order ticket with a screenshot (a GIF is
refused first, at its field, with everything typed still there), staff answer in the admin
with a saved reply beside the customer's balance and orders, and the customer sees the answer
(and the Support link's count); the "new ticket" mail reached staff and the "ticket answered"
mail is in the customer's outbox."""

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from accounts.services import customer_create
from support.models import SavedReply, Ticket
from tests.browser.conftest import login, staff_login
from tests.support.helpers import image_bytes, make_order
from tests.totp import give_second_factor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _support_settings(settings):
    settings.SUPPORT_TICKETS_PER_HOUR = 1000  # the cache outlives the test database


def _open_ticket(page, order_id: int) -> None:
    page.get_by_role("link", name="Support").click()
    page.get_by_role("link", name="New ticket").click()
    form = page.locator("form[data-ticket-form]")
    page.get_by_label("About").select_option("payment")
    expect(page.get_by_label("Payment reference")).to_be_visible()
    expect(page.get_by_label("Order IDs")).to_be_hidden()
    page.get_by_label("About").select_option("order")
    expect(page.get_by_label("Payment reference")).to_be_hidden()
    page.get_by_label("Order IDs").fill(str(order_id))
    page.get_by_label("Request").select_option("refill")
    page.get_by_label("Subject").fill("Followers dropped")
    page.get_by_label("Message").fill("Half are gone <b>since Monday</b>.")
    gif = {"name": "proof.png", "mimeType": "image/png", "buffer": image_bytes("GIF")}
    page.get_by_label("Screenshot").set_input_files(gif)
    form.get_by_role("button", name="Open ticket").click()
    # Refused at its field; nothing typed is lost, and the page says to choose the file again.
    expect(page.locator("#id_attachment_error")).to_contain_text("Only PNG and JPEG")
    expect(page.get_by_label("Subject")).to_have_value("Followers dropped")
    expect(page.get_by_label("Order IDs")).to_have_value(str(order_id))
    expect(page.get_by_label("Message")).to_have_value("Half are gone <b>since Monday</b>.")
    expect(page.locator("#file-lost")).to_be_visible()
    assert not Ticket.objects.exists()
    real = {"name": "proof.png", "mimeType": "image/png", "buffer": image_bytes("PNG")}
    page.get_by_label("Screenshot").set_input_files(real)
    form.get_by_role("button", name="Open ticket").click()
    expect(page.get_by_role("heading", name=re.compile("Followers dropped"))).to_be_visible()


def test_customer_opens_an_order_ticket_and_sees_the_staff_answer(
    new_page, django_user_model, screenshot_dir
):
    carol = customer_create(username="carol", email="carol@example.com", password="pw-carol-12345")
    order = make_order(carol)
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-12345")
    secret = give_second_factor(boss)
    SavedReply.objects.create(title="Refill started", body="Hi {username}, a refill is on its way.")

    page = new_page()
    login(page, "carol", "pw-carol-12345")
    _open_ticket(page, order.pk)
    ticket = Ticket.objects.get()
    expect(page.get_by_test_id("ticket-status")).to_have_text("Open")
    expect(page.get_by_text("Half are gone <b>since Monday</b>.")).to_be_visible()  # as typed
    expect(page.get_by_role("link", name="proof.png")).to_be_visible()
    told = [m for m in mail.outbox if m.to == ["boss@example.com"]]
    assert len(told) == 1 and told[0].subject.endswith(
        f"New ticket #{ticket.pk}: Followers dropped"
    )

    # Staff answer in the admin, with a saved reply, the customer beside the thread.
    admin = new_page()
    staff_login(
        admin, "boss", "pw-boss-12345", secret, url=f"/admin/support/ticket/{ticket.pk}/change/"
    )
    expect(admin.locator("#ticket-customer")).to_contain_text("carol")
    expect(admin.locator("#ticket-recent-orders")).to_contain_text(str(order.pk))
    expect(admin.locator("#thread")).to_contain_text("Half are gone <b>since Monday</b>.")
    admin.get_by_label("Saved reply").select_option(label="Refill started")
    admin.get_by_role("button", name="Use").click()
    expect(admin.get_by_label("Message")).to_have_value("Hi carol, a refill is on its way.")
    admin.get_by_role("button", name="Send").click()
    expect(admin.get_by_text("Answer sent to carol.")).to_be_visible()
    answered = [m for m in mail.outbox if m.to == ["carol@example.com"]]
    assert len(answered) == 1 and answered[0].subject.endswith(f"Ticket #{ticket.pk} answered")
    assert "Hi carol, a refill is on its way." in answered[0].body
    admin.screenshot(path=screenshot_dir / "admin-ticket-desktop.png", full_page=True)

    # The customer sees it: the count in the navigation, the state, the answer.
    page.goto("/tickets/")
    expect(page.get_by_test_id("answered-tickets")).to_have_text(re.compile(r"^1"))
    expect(page.locator("#tickets-list")).to_contain_text("Answered")
    page.get_by_role("link", name="Followers dropped").click()
    expect(page.locator("#thread")).to_contain_text("Hi carol, a refill is on its way.")
    page.get_by_label("Your reply").fill("Thank you!")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_test_id("ticket-status")).to_have_text("Customer reply")
