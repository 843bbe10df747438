"""Users from before django-allauth keep access: each address already on a user becomes the
user's primary, verified allauth EmailAddress (the old sign-up took it as the address password
resets go to). An address two users share (case aside) is left to the first of them; users
without an address log in by username."""

from django.db import migrations


def forwards(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    EmailAddress = apps.get_model("account", "EmailAddress")
    taken = {e.lower() for e in EmailAddress.objects.values_list("email", flat=True)}
    have_one = set(EmailAddress.objects.values_list("user_id", flat=True))
    rows = []
    for user_id, email in User.objects.exclude(email="").order_by("pk").values_list("pk", "email"):
        if email.lower() in taken or user_id in have_one:
            continue
        taken.add(email.lower())
        rows.append(EmailAddress(user_id=user_id, email=email.lower(), primary=True, verified=True))
    EmailAddress.objects.bulk_create(rows, batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_security_history_sessions_allowlist"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
