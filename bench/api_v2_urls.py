"""The panel's URLs plus /bench/ceiling: a bare Django JSON view through the same middleware,
the most any view can do on this server."""

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from panel.urls import urlpatterns as panel_urlpatterns


@csrf_exempt
def ceiling(request):
    return JsonResponse({"balance": "100.84292", "currency": "USD"})


urlpatterns = [path("bench/ceiling", ceiling), *panel_urlpatterns]
