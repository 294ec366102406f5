"""Atlas's admin site: its name, its home (the overview) and the apps in the operator's order."""

from __future__ import annotations

import threading

from django.contrib import admin
from django.contrib.admin.apps import SimpleAdminConfig
from django.utils import timezone

from . import overview

# The operator's flow: build and run, check, protect, answer subjects, trace, keep; then settings.
APP_ORDER = ("pipelines", "quality", "compliance", "privacy", "lineage", "retention", "alerts", "atlas")


def app_rank(app_label: str) -> tuple[int, str]:
    return (APP_ORDER.index(app_label) if app_label in APP_ORDER else len(APP_ORDER), app_label)


_discovery = threading.RLock()


class AtlasAdminSite(admin.AdminSite):
    """Atlas's admin: its apps' ``admin`` modules are imported when the site is first used.

    Django imports every app's ``admin`` module when a process starts (``AdminConfig.ready``);
    they import most of Atlas (the editor, the runner, the checks, pictures), which every
    ``manage.py`` command paid for. Here the first read of the registry does it (serving the
    URLs, the admin's system checks, ``admin.site._registry``), once per process, so a command
    that never touches the admin never imports it (``atlas/tests/test_startup.py``).
    """

    site_header = "Atlas"
    site_title = "Atlas"
    index_title = "Overview"

    def __init__(self, *args, **kwargs) -> None:
        self._discovered = False
        super().__init__(*args, **kwargs)

    # Registering (an admin module imported before the site was used) reads the registry without
    # discovering the others: discovery imports every admin module, the one registering included.
    _registering = threading.local()

    def register(self, *args, **kwargs):
        return self._undiscovered(super().register, *args, **kwargs)

    def unregister(self, *args, **kwargs):
        return self._undiscovered(super().unregister, *args, **kwargs)

    def is_registered(self, model) -> bool:
        return self._undiscovered(super().is_registered, model)

    def _undiscovered(self, method, *args, **kwargs):
        depth = getattr(self._registering, "depth", 0)
        self._registering.depth = depth + 1
        try:
            return method(*args, **kwargs)
        finally:
            self._registering.depth = depth

    @property
    def _registry(self) -> dict:
        if not self._discovered and not getattr(self._registering, "depth", 0):
            with _discovery:  # re-entrant: the admin modules register while it is held
                if not self._discovered:
                    self._discovered = True
                    admin.autodiscover()
        return self.__dict__["_registry"]

    @_registry.setter
    def _registry(self, value: dict) -> None:
        self.__dict__["_registry"] = value

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        return sorted(apps, key=lambda app: app_rank(app["app_label"]))

    def index(self, request, extra_context=None):
        found = overview.sections(request, timezone.now())
        level, line = overview.verdict(found)
        context = {"overview": found, "overview_level": level, "overview_verdict": line, **(extra_context or {})}
        return super().index(request, context)


class AtlasAdminConfig(SimpleAdminConfig):
    """``django.contrib.admin`` with Atlas's site, whose admin modules load on its first use (see above)."""

    default_site = "atlas.admin_site.AtlasAdminSite"

    def ready(self) -> None:
        super().ready()
        # The site itself now (cheap), so the admin's system checks find it; its modules on first use.
        self.module.site.name  # noqa: B018
