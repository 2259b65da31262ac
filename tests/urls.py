"""URLs for the test suite."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from clearance.contrib.authzen.urls import well_known

urlpatterns = [
    path("admin/", admin.site.urls),
    path("authzen/", include("clearance.contrib.authzen.urls")),
    *well_known("authzen/"),
]
