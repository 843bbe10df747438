"""Writes of the news and the site pages: staff's saves (from the admin), a customer's read
marks, and the record of a sign-up's acceptance of the terms."""

from collections.abc import Iterable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from content.models import (
    Announcement,
    AnnouncementRead,
    SitePage,
    SitePageRevision,
    TermsAcceptance,
)


def announcement_save(*, announcement: Announcement, by: User | None) -> Announcement:
    """Save an announcement staff wrote (new or changed), checked first: a window whose end
    is not after its start is refused at the field."""
    if announcement.pk is None and announcement.created_by_id is None and by is not None:
        announcement.created_by = by
    announcement.full_clean()
    announcement.save()
    return announcement


def announcement_mark_read(
    *, user: User, announcement_ids: Iterable[int], now: datetime | None = None
) -> int:
    """Mark these announcements read by `user`; already read ones keep their first time.
    Returns how many were new to them. One INSERT whatever the number."""
    now = now or timezone.now()
    ids = set(announcement_ids)
    if not ids:
        return 0
    rows = [AnnouncementRead(user=user, announcement_id=pk, read_at=now) for pk in sorted(ids)]
    before = AnnouncementRead.objects.filter(user=user, announcement_id__in=ids).count()
    AnnouncementRead.objects.bulk_create(rows, ignore_conflicts=True)
    return len(ids) - before


@transaction.atomic
def site_page_publish(
    *, slug: str, title: str, body: str, by: User | None, now: datetime | None = None
) -> SitePage:
    """Publish the page `slug` with this title and text. A change of either is a new version
    (the first publication is version 1), kept as a SitePageRevision; saving the same text
    again changes nothing. The row is locked, so two staff saving at once make two versions,
    never the same number twice."""
    if slug not in SitePage.Slug.values:
        raise ValidationError({"slug": f"No site page {slug!r}."})
    now = now or timezone.now()
    page = SitePage(slug=slug, title=title, body=body, updated_at=now, updated_by=by)
    page.full_clean(exclude=["slug"])
    SitePage.objects.get_or_create(
        slug=slug, defaults={"title": title, "body": body, "version": 0, "updated_at": now}
    )
    page = SitePage.objects.select_for_update().get(slug=slug)
    if page.version > 0 and (page.title, page.body) == (title, body):
        return page
    page.title, page.body = title, body
    page.version += 1
    page.updated_at, page.updated_by = now, by
    page.save()
    SitePageRevision.objects.create(
        page=page, version=page.version, title=title, body=body, published_at=now, published_by=by
    )
    return page


def terms_acceptance_record(
    *, user: User, version: int, ip: str | None, now: datetime | None = None
) -> TermsAcceptance:
    """Record that `user` accepted the terms `version` (at sign-up)."""
    return TermsAcceptance.objects.create(
        user=user, version=version, accepted_at=now or timezone.now(), ip=ip or None
    )
