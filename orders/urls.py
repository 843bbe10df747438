from django.urls import path

from orders import views

urlpatterns = [
    path("order/", views.order_new, name="order_new"),
    path("order/quote/", views.order_quote_fragment, name="order_quote"),
    path("mass-order/", views.mass_order, name="mass_order"),
    path("orders/", views.order_list, name="orders"),
    path("orders/drip-feed/", views.drip_feed_list, name="drip_feed_orders"),
    path("orders/subscriptions/", views.subscription_list, name="subscription_orders"),
    path("orders/<int:order_id>/", views.order_detail, name="order_detail"),
    path("orders/<int:order_id>/row/", views.order_row, name="order_row"),
    path("orders/<int:order_id>/refill/", views.order_refill, name="order_refill"),
    path("orders/<int:order_id>/cancel/", views.order_cancel, name="order_cancel"),
]
