from django.urls import path

from . import views

urlpatterns = [
    path("", views.LineageView.as_view(), name="lineage-api"),
]
