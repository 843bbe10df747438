"""News for customers (announcements, with who read which) and the site pages (Terms, FAQ,
Privacy) with their versions, and the record of each customer's acceptance of the terms."""

from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class Announcement(models.Model):
    """A piece of news. Customers see it while `visible_from <= now < visible_until` (no end:
    until staff change it); pinned ones come first, then the newest."""

    title = models.CharField(max_length=200)
    body = models.TextField(
        help_text="Markdown: **bold**, *italic*, [a link](https://example.com), lists, tables. "
        "Scripts, images and unsafe links are removed when it is shown."
    )
    pinned = models.BooleanField(default=False, help_text="Shown above the others.")
    visible_from = models.DateTimeField(
        default=timezone.now, db_index=True, help_text="Customers see it from this moment."
    )
    visible_until = models.DateTimeField(
        null=True, blank=True, help_text="Hidden from this moment on. Empty: no end."
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-pinned", "-visible_from", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(visible_until__isnull=True) | Q(visible_until__gt=F("visible_from")),
                name="content_announcement_window",
            )
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        if self.visible_until and self.visible_from and self.visible_until <= self.visible_from:
            raise ValidationError({"visible_until": "The end must come after the start."})

    def is_visible_at(self, now: datetime) -> bool:
        return self.visible_from <= now and (self.visible_until is None or now < self.visible_until)


class AnnouncementRead(models.Model):
    """A customer has read an announcement (one row per pair; no row: it is new to them)."""

    announcement = models.ForeignKey(Announcement, on_delete=models.CASCADE, related_name="reads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    read_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # (user, announcement): the unread lookups go by user first.
        constraints = [
            models.UniqueConstraint(fields=["user", "announcement"], name="content_read_once")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.announcement_id}"


class SitePage(models.Model):
    """One of the fixed pages, edited by staff; `version` goes up by one on each published
    change of its title or text (content.services.site_page_publish)."""

    class Slug(models.TextChoices):
        TERMS = "terms", "Terms of service"
        FAQ = "faq", "FAQ"
        PRIVACY = "privacy", "Privacy policy"

    slug = models.CharField(max_length=20, choices=Slug.choices, unique=True)
    title = models.CharField(max_length=200)
    body = models.TextField(help_text="Markdown, cleaned like the news when it is shown.")
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.get_slug_display()} (version {self.version})"


class SitePageRevision(models.Model):
    """Each published version of a page as it was, so "accepted the terms, version 3" can be
    read back. Written by site_page_publish only, never changed."""

    page = models.ForeignKey(SitePage, on_delete=models.CASCADE, related_name="revisions")
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    body = models.TextField()
    published_at = models.DateTimeField(default=timezone.now)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["page", "version"], name="content_revision_once")
        ]

    def __str__(self) -> str:
        return f"{self.page.slug} version {self.version}"


class TermsAcceptance(models.Model):
    """A customer accepted the terms of service: which version (0: the panel's default text,
    before staff published any), when, and from which address. A later change of the terms
    asks nothing of anyone: only the sign-up records a row."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="terms_acceptances"
    )
    version = models.PositiveIntegerField()
    accepted_at = models.DateTimeField(default=timezone.now, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-accepted_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user_id} accepted terms version {self.version}"
