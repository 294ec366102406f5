"""The keyed audit chain: events remember how their hash is computed.

Existing events were hashed with plain SHA-256 and keep scheme 1 (they still
verify); every event written from now on is an HMAC keyed outside the database
(scheme 2, the model's default). The first keyed event links to the last old one.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("atlas", "0002_roles"),
    ]

    operations = [
        # Existing rows: scheme 1 (SHA-256), as they were written.
        migrations.AddField(
            model_name="auditevent",
            name="scheme",
            field=models.PositiveSmallIntegerField(
                default=1, editable=False, help_text="How the hash is computed: 1 SHA-256 (old events), 2 HMAC."
            ),
        ),
        # New rows: scheme 2 (HMAC). A Python-side default: no change in the database.
        migrations.AlterField(
            model_name="auditevent",
            name="scheme",
            field=models.PositiveSmallIntegerField(
                default=2, editable=False, help_text="How the hash is computed: 1 SHA-256 (old events), 2 HMAC."
            ),
        ),
    ]
