"""Create the role groups (Operator, Steward, Analyst, Auditor) with the permissions that exist now.

Permissions of apps migrated later join on post_migrate (atlas.roles.sync_roles).
"""

from django.db import migrations


def create_roles(apps, schema_editor):
    from atlas.roles import sync_roles

    sync_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), using=schema_editor.connection.alias)


def remove_roles(apps, schema_editor):
    from atlas.roles import ROLES

    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=[r.name for r in ROLES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("atlas", "0001_audit_log"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
