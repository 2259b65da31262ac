"""URLs of the console. Include them under a prefix of your choice::

path("clearance/", include("clearance.console.urls")),
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "clearance_console"

urlpatterns = [
    path("", views.index, name="index"),
    path("actions/", views.actions, name="actions"),
    path("matrix/", views.matrix, name="matrix"),
    path("explain/", views.explain, name="explain"),
    path("audit/", views.audit, name="audit"),
    path("audit/<int:pk>/", views.audit_record, name="audit-record"),
    path("changes/", views.changes, name="changes"),
]
