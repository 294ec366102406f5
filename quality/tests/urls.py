"""Only the admin: the quality admin tests do not depend on the rest of the project's URLs."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
