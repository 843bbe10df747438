from django.urls import path

from catalog import views

urlpatterns = [
    path("services/", views.service_list, name="services"),
    path(
        "services/<int:service_id>/favourite/",
        views.service_favourite,
        name="service_favourite",
    ),
]
