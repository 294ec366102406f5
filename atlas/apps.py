from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AtlasConfig(AppConfig):
    name = "atlas"
    verbose_name = "Atlas"

    def ready(self) -> None:
        from .scrub import install_log_scrubbing

        install_log_scrubbing()  # no row value in any log record (atlas.scrub)
        from .humanize import install_admin_times

        install_admin_times()  # local times with their age in every admin list and page (atlas.humanize)
        from .audit_tracking import connect as connect_audit_tracking
        from .audit_tracking import untracked
        from .roles import sync_roles_after_migrate

        # Models added by any app later join the roles (atlas.roles) on every migrate.
        # Audit: every change of a definition or a role is recorded (atlas.audit_tracking),
        # except this role sync itself, which applies the roles defined in code.
        sync = untracked(sync_roles_after_migrate)
        post_migrate.connect(sync, dispatch_uid="atlas.roles.sync", weak=False)
        connect_audit_tracking()

        from .api import pagecache

        pagecache.connect()  # every write bumps the API page cache's data generation

        from django.core.checks import Tags, register

        from .audit_key import check_audit_key

        register(check_audit_key, Tags.security)
