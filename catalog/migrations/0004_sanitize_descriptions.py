"""Existing descriptions cleaned to the allow-list the sync now applies (issue 11 #20), so the
first sync after the upgrade does not log a detail change for every service with HTML and
the reseller API's `desc` carries no script. The allow-list is frozen here as it was written;
catalog.services.descriptions may change later."""

import nh3
from django.db import migrations

TAGS = {"b", "i", "strong", "em", "br", "p", "ul", "ol", "li", "a"}


def _clean(text):
    if not text:
        return ""
    return nh3.clean(
        text.strip(),
        tags=set(TAGS),
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener",
    ).strip()


def sanitize(apps, schema_editor):
    for name in ("UpstreamService", "Service"):
        model = apps.get_model("catalog", name)
        changed = []
        for row in model.objects.exclude(description="").only("pk", "description").iterator(2000):
            clean = _clean(row.description)
            if clean != row.description:
                row.description = clean
                changed.append(row)
        model.objects.bulk_update(changed, ["description"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0003_catalog_sync_run")]

    operations = [migrations.RunPython(sanitize, migrations.RunPython.noop)]
