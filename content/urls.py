from django.urls import path

from content import views
from content.models import SitePage

urlpatterns = [
    path("news/", views.news, name="news"),
    path("news/<int:pk>/", views.news_detail, name="news_detail"),
    path("news/<int:pk>/read/", views.news_mark_read, name="news_mark_read"),
    path("news/read-all/", views.news_mark_all_read, name="news_mark_all_read"),
    # The site pages at fixed addresses, linked in the footer of every page.
    path("terms/", views.site_page, {"slug": SitePage.Slug.TERMS.value}, name="terms"),
    path("faq/", views.site_page, {"slug": SitePage.Slug.FAQ.value}, name="faq"),
    path("privacy/", views.site_page, {"slug": SitePage.Slug.PRIVACY.value}, name="privacy"),
]
