from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from . import adminpaths, doors, extensions, health, metrics, views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    # Open for probes; failing checks' reasons only for staff and the scrape token (atlas.doors).
    path("readyz", doors.readyz_door(health.readyz), name="readyz"),
    # Not public: the Prometheus scrape token or a staff user (atlas.doors).
    path("metrics", doors.metrics_door(metrics.metrics_view), name="metrics"),
    # What the apps contribute ("urls" in their AppConfig, atlas.extensions): the lineage receiver.
    *[path(route, include(urlconf)) for route, urlconf in extensions.contributions("urls")],
    path("api/", include("atlas.api.urls")),
    path(adminpaths.ADMIN_ROUTE, admin.site.urls),
]
if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
