"""Announcements: the visibility window, the per-customer read state, the news pages and the
home page's current news."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from content.models import Announcement, AnnouncementRead
from content.selectors import (
    announcement_list_for_user,
    announcement_list_visible,
    announcement_unread_count,
)
from content.services import announcement_mark_read, announcement_save

pytestmark = pytest.mark.django_db


def _news(title="Maintenance", *, pinned=False, start=None, end=None, body="Body **text**"):
    now = timezone.now()
    return Announcement.objects.create(
        title=title,
        body=body,
        pinned=pinned,
        visible_from=start or now - timedelta(hours=1),
        visible_until=end,
    )


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def test_visibility_window_is_from_inclusive_until_exclusive():
    now = timezone.now()
    current = _news("current", start=now - timedelta(days=1), end=now + timedelta(days=1))
    open_ended = _news("open", start=now - timedelta(days=1))
    _news("future", start=now + timedelta(minutes=1))
    _news("past", start=now - timedelta(days=2), end=now - timedelta(days=1))
    starts_now = _news("starts now", start=now)
    _news("ends now", start=now - timedelta(days=1), end=now)
    visible = set(announcement_list_visible(now=now))
    assert visible == {current, open_ended, starts_now}


def test_pinned_come_first_then_the_newest():
    now = timezone.now()
    old_pinned = _news("old pinned", pinned=True, start=now - timedelta(days=5))
    newest = _news("newest", start=now - timedelta(hours=1))
    older = _news("older", start=now - timedelta(days=2))
    assert list(announcement_list_visible(now=now)) == [old_pinned, newest, older]


def test_a_window_ending_before_it_starts_is_refused_at_the_field():
    now = timezone.now()
    bad = Announcement(title="x", body="y", visible_from=now, visible_until=now)
    with pytest.raises(Exception) as error:
        announcement_save(announcement=bad, by=None)
    assert "visible_until" in error.value.message_dict
    with pytest.raises(IntegrityError):  # and the database refuses it too
        Announcement.objects.create(title="x", body="y", visible_from=now, visible_until=now)


def test_read_state_is_per_customer(alice, bob):
    now = timezone.now()
    first, second = _news("first"), _news("second")
    assert announcement_unread_count(user_id=alice.pk, now=now) == 2
    assert announcement_mark_read(user=alice, announcement_ids=[first.pk], now=now) == 1
    assert announcement_mark_read(user=alice, announcement_ids=[first.pk], now=now) == 0
    state = {a.pk: a.is_read for a in announcement_list_for_user(user_id=alice.pk, now=now)}
    assert state == {first.pk: True, second.pk: False}
    assert announcement_unread_count(user_id=alice.pk, now=now) == 1
    assert announcement_unread_count(user_id=bob.pk, now=now) == 2


def test_the_read_state_of_a_list_costs_one_query(alice):
    for i in range(10):
        _news(f"n{i}")
    with CaptureQueriesContext(connection) as queries:
        states = [
            a.is_read for a in announcement_list_for_user(user_id=alice.pk, now=timezone.now())
        ]
    assert len(states) == 10 and len(queries) == 1


def test_news_page_shows_new_once_then_marks_read(alice_client, alice):
    news = _news("Price update", body="Prices **drop** today")
    body = alice_client.get(reverse("news")).content.decode()
    assert "Price update" in body and "<strong>drop</strong>" in body
    assert 'news-new">New<' in body
    assert AnnouncementRead.objects.filter(user=alice, announcement=news).exists()
    body = alice_client.get(reverse("news")).content.decode()
    assert "Price update" in body and 'news-new">New<' not in body


def test_news_page_hides_news_outside_its_window(alice_client):
    now = timezone.now()
    _news("Not yet", start=now + timedelta(hours=1))
    _news("Over", start=now - timedelta(days=2), end=now - timedelta(days=1))
    body = alice_client.get(reverse("news")).content.decode()
    assert "Not yet" not in body and "Over" not in body and "No news at the moment" in body


def test_detail_marks_read_and_a_hidden_one_is_404(alice_client, alice):
    news = _news("Detail")
    hidden = _news("Hidden", start=timezone.now() + timedelta(days=1))
    assert alice_client.get(reverse("news_detail", args=[news.pk])).status_code == 200
    assert AnnouncementRead.objects.filter(user=alice, announcement=news).exists()
    assert alice_client.get(reverse("news_detail", args=[hidden.pk])).status_code == 404


def test_home_shows_current_news_pinned_first_with_a_mark_read_button(alice_client, alice):
    now = timezone.now()
    _news("Plain news", start=now - timedelta(minutes=5))
    _news("Pinned news", pinned=True, start=now - timedelta(days=3))
    body = alice_client.get(reverse("home")).content.decode()
    assert body.index("Pinned news") < body.index("Plain news")
    assert body.count('news-new">New<') == 2
    assert 'id="news-unread">2<' in body  # the badge in the menu
    plain = Announcement.objects.get(title="Plain news")
    response = alice_client.post(
        reverse("news_mark_read", args=[plain.pk]), {"next": reverse("home")}
    )
    assert response.status_code == 302 and response["Location"] == reverse("home")
    body = alice_client.get(reverse("home")).content.decode()
    assert body.count('news-new">New<') == 1 and 'id="news-unread">1<' in body


def test_mark_read_refuses_an_outside_next_and_get(alice_client):
    news = _news()
    url = reverse("news_mark_read", args=[news.pk])
    assert alice_client.get(url).status_code == 405
    response = alice_client.post(url, {"next": "https://evil.example.com/"})
    assert response["Location"] == reverse("news")


def test_mark_all_read_from_the_home_page(alice_client, alice):
    _news("a"), _news("b")
    assert "Mark all as read" in alice_client.get(reverse("home")).content.decode()
    response = alice_client.post(reverse("news_mark_all_read"), {"next": reverse("home")})
    assert response["Location"] == reverse("home")
    assert announcement_unread_count(user_id=alice.pk, now=timezone.now()) == 0
    assert "Mark all as read" not in alice_client.get(reverse("home")).content.decode()


def test_news_needs_a_login(client):
    response = client.get(reverse("news"))
    assert response.status_code == 302 and "/login/" in response["Location"]
