"""The console mounted where the docs suggest, under ``/clearance/``."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [path("clearance/", include("clearance.console.urls"))]
