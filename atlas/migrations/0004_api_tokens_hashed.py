"""API tokens hashed: DRF's clear-text keys become knox digests (with an expiry) and their table goes.

Nothing is lost for integrators: a key that worked keeps working until it
expires (ATLAS_API_TOKEN_DAYS from this migration). What is lost is the key
in clear in the database. Not reversible: the keys cannot be recovered from
their digests, which is the point.
"""

from django.db import migrations


def hash_clear_tokens(apps, schema_editor):
    from atlas.api.tokens import migrate_clear_tokens

    migrate_clear_tokens(schema_editor, apps.get_model("knox", "AuthToken"))
    # The old app's permissions ("Can view token"...) would linger in the group editor.
    apps.get_model("contenttypes", "ContentType").objects.using(schema_editor.connection.alias).filter(
        app_label="authtoken"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("atlas", "0003_auditevent_scheme"),
        ("knox", "0009_extend_authtoken_field"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(hash_clear_tokens, migrations.RunPython.noop)]
