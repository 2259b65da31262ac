"""The demo's URLs, plus ``hand/``: the same pages with the checks written by hand."""

from __future__ import annotations

from django.urls import include, path

from demo.urls import handler403
from demo.urls import urlpatterns as demo_urlpatterns

from . import views

__all__ = ["handler403", "urlpatterns"]

urlpatterns = [
    path("hand/invoices/", views.invoice_list),
    path("hand/invoices/<int:pk>/", views.invoice_detail),
    path("hand/invoices/<int:pk>/approve/", views.approve),
    path("", include(demo_urlpatterns)),
]
