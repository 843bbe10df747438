"""Staff publish news and write the site pages here, with a preview of the rendered Markdown
(as customers will see it: sanitized) that follows the text as it is typed; the customer's
acceptances of the terms are shown on the customer (terms_acceptance_table, accounts/admin.py)."""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from accounts.audit import AuditedAdminMixin, staff_user
from content.models import Announcement, SitePage, SitePageRevision, TermsAcceptance
from content.rendering import markdown_html
from content.selectors import terms_acceptance_list_for_user
from content.services import announcement_save, site_page_publish

MAX_PREVIEW_CHARS = 100_000


class MarkdownPreviewMixin(admin.ModelAdmin):
    """A "Preview" box under the Markdown `body`: rendered from the saved text on the server,
    then re-rendered by the preview URL as staff type (static/content/markdown_preview.js)."""

    class Media:
        js = ["content/markdown_preview.js"]

    @admin.display(description="Preview")
    def preview(self, obj: Any) -> str:
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_preview",
            current_app=self.admin_site.name,
        )
        rendered = markdown_html(getattr(obj, "body", "") or "")
        return format_html(
            '<div class="markdown-preview" data-preview-url="{}" aria-live="polite">{}</div>',
            url,
            mark_safe(rendered),  # noqa: S308  (sanitized by content/sanitize.py)
        )

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """The body of the form, rendered and sanitized (never saved): text/html."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        body = request.POST.get("body", "")[:MAX_PREVIEW_CHARS]
        return HttpResponse(markdown_html(body), content_type="text/html; charset=utf-8")

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name="{}_{}_preview".format(*info),
            ),
            *super().get_urls(),
        ]


@admin.register(Announcement)
class AnnouncementAdmin(AuditedAdminMixin, MarkdownPreviewMixin, admin.ModelAdmin):
    list_display = ("title", "pinned", "visible_from", "visible_until", "shown_now", "read_by")
    list_filter = ("pinned",)
    search_fields = ("title", "body")
    date_hierarchy = "visible_from"
    fields = ("title", "body", "preview", "pinned", "visible_from", "visible_until")
    readonly_fields = ("preview",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Announcement]:
        return super().get_queryset(request).annotate(read_count=Count("reads"))

    @admin.display(description="shown now", boolean=True)
    def shown_now(self, obj: Announcement) -> bool:
        return obj.is_visible_at(timezone.now())

    @admin.display(description="read by", ordering="read_count")
    def read_by(self, obj: Announcement) -> int:
        return getattr(obj, "read_count", 0)

    def save_model(
        self, request: HttpRequest, obj: Announcement, form: forms.ModelForm, change: bool
    ) -> None:
        self.audit_remember_form(request, form, change)
        announcement_save(announcement=obj, by=staff_user(request))


class SitePageRevisionInline(admin.TabularInline):
    model = SitePageRevision
    fields = ("version", "title", "published_at", "published_by")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SitePage)
class SitePageAdmin(AuditedAdminMixin, MarkdownPreviewMixin, admin.ModelAdmin):
    list_display = ("slug", "title", "version", "updated_at", "updated_by")
    list_select_related = ("updated_by",)
    readonly_fields = ("preview", "version", "updated_at", "updated_by")
    inlines = [SitePageRevisionInline]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never: the versions customers accepted would be lost, and a page published again
        would count from 1, the same numbers for other texts."""
        return False

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fields = ("title", "body", "preview", "version", "updated_at", "updated_by")
        return fields if obj else ("slug", *fields)

    def save_model(
        self, request: HttpRequest, obj: SitePage, form: forms.ModelForm, change: bool
    ) -> None:
        """Publishing goes through site_page_publish: a changed title or text is a new version."""
        self.audit_remember_form(request, form, change)
        page = site_page_publish(
            slug=obj.slug, title=obj.title, body=obj.body, by=staff_user(request)
        )
        obj.pk = page.pk
        obj.refresh_from_db()


@admin.register(TermsAcceptance)
class TermsAcceptanceAdmin(admin.ModelAdmin):
    """Read-only: rows are written by the sign-up only."""

    list_display = ("accepted_at", "user", "version", "ip")
    list_filter = ("version",)
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email", "ip")
    raw_id_fields = ("user",)
    readonly_fields = ("user", "version", "accepted_at", "ip")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def terms_acceptance_table(*, user_id: int | None) -> str:
    """The customer's acceptances of the terms (version, when, address), newest first, as a
    small table for the customer's admin page (accounts.admin.UserAdmin): a read-only field
    rather than an inline, so the customer form posts no extra formset."""
    if not user_id:
        return "—"
    rows = terms_acceptance_list_for_user(user_id=user_id)
    if not rows:
        return "None recorded (an account made before the terms were asked, or by staff)."
    body = format_html_join(
        "",
        "<tr><td class='num'>{}</td><td>{}</td><td>{}</td></tr>",
        ((r.version, f"{r.accepted_at:%Y-%m-%d %H:%M:%S} UTC", r.ip or "—") for r in rows),
    )
    url = reverse("admin:content_termsacceptance_changelist") + f"?user__id__exact={user_id}"
    return format_html(
        "<table><thead><tr><th>Version</th><th>Accepted at</th><th>Address</th></tr></thead>"
        '<tbody>{}</tbody></table><p><a href="{}">In the list of acceptances</a></p>',
        body,
        url,
    )
