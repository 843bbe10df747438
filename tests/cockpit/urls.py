"""The panel's URLs. (The cockpit's tests had the admin alone; its login is allauth's now, whose
pages are the panel's pages, so the customer URLs come along.)"""

from panel.urls import urlpatterns

__all__ = ["urlpatterns"]
