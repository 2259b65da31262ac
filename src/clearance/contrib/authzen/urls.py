"""URLs of the AuthZEN endpoint; include them under the prefix of your choice::

    from clearance.contrib.authzen.urls import well_known

    urlpatterns = [
        path("authzen/", include("clearance.contrib.authzen.urls")),
        *well_known("authzen/"),   # /.well-known/authzen-configuration/authzen
    ]

The API is then served at ``/authzen/access/v1/evaluation`` and its siblings, and the PDP
identifier is ``https://<host>/authzen``.
"""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views

__all__ = ["app_name", "urlpatterns", "well_known"]

app_name = "clearance_authzen"

urlpatterns = [
    path("access/v1/evaluation", views.evaluation, name="evaluation"),
    path("access/v1/evaluations", views.evaluations, name="evaluations"),
    path("access/v1/search/subject", views.search_subject, name="search_subject"),
    path("access/v1/search/resource", views.search_resource, name="search_resource"),
    path("access/v1/search/action", views.search_action, name="search_action"),
]


def well_known(prefix: str = "") -> list[URLPattern]:
    """The metadata URL for the root URLconf: the well-known name inserted before ``prefix``
    (RFC 8615), e.g. ``.well-known/authzen-configuration/authzen`` for ``"authzen/"``."""
    tail = prefix.strip("/")
    route = ".well-known/authzen-configuration" + (f"/{tail}" if tail else "")
    return [path(route, views.metadata, name="authzen_configuration")]
