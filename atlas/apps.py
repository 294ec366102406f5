from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AtlasConfig(AppConfig):
    name = "atlas"
    verbose_name = "Atlas"

    def ready(self) -> None:
        from .roles import sync_roles_after_migrate

        # Models added by any app later join the roles (atlas.roles) on every migrate.
        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="atlas.roles.sync")
