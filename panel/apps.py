from django.contrib.admin.apps import AdminConfig


class PanelAdminConfig(AdminConfig):
    """django.contrib.admin with panel.admin.PanelAdminSite as `admin.site`."""

    default_site = "panel.admin.PanelAdminSite"
