"""The admin alone: the cockpit's tests do not depend on the customer pages being importable."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("admin/", admin.site.urls),
]
