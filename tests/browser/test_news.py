"""Staff publish news in the admin (with the live preview of the rendered Markdown); the customer
sees it on the home page marked new, then not new once read."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from accounts.services import customer_create
from content.models import Announcement
from tests.browser.conftest import login, staff_login
from tests.totp import give_second_factor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_publish_news_the_customer_sees_it_new_then_read(new_page, django_user_model):
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-12345")
    customer_create(username="nina", email="nina@example.com", password="pw-nina-12345")

    admin = new_page()
    url = reverse("admin:content_announcement_add")
    staff_login(admin, "boss", "pw-boss-12345", give_second_factor(boss), url=url)
    admin.get_by_label("Title").fill("New TikTok services")
    admin.get_by_label("Body").fill("Cheaper **TikTok** views <script>alert(1)</script>")
    preview = admin.locator(".markdown-preview")
    expect(preview.locator("strong")).to_have_text("TikTok")  # rendered as typed, not saved
    expect(preview).not_to_contain_text("alert")
    assert not Announcement.objects.exists()
    admin.get_by_label("Pinned").check()
    admin.get_by_role("button", name="Save", exact=True).click()
    expect(admin.locator(".messagelist")).to_contain_text("was added successfully")
    news = Announcement.objects.get()
    assert news.pinned and news.created_by == boss

    page = new_page()
    login(page, "nina", "pw-nina-12345")
    page.goto("/")
    card = page.locator(f'[data-announcement="{news.pk}"]')
    expect(card.get_by_role("heading")).to_contain_text("New TikTok services")
    expect(card.locator(".news-new")).to_have_text("New")
    expect(card.locator("strong")).to_have_text("TikTok")
    expect(page.locator("#news-unread")).to_contain_text("1")
    card.get_by_role("button", name="Mark as read").click()
    page.wait_for_load_state()
    expect(card.locator(".news-new")).to_have_count(0)
    expect(card.get_by_role("button", name="Mark as read")).to_have_count(0)
    expect(page.locator("#news-unread")).to_have_count(0)
    page.get_by_role("link", name="News", exact=True).click()
    expect(page.get_by_role("heading", name="New TikTok services")).to_be_visible()
    expect(page.locator(".news-new")).to_have_count(0)
