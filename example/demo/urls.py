"""URL configuration of the demo project."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from django.views.generic import RedirectView

from clearance.contrib.authzen.urls import well_known

urlpatterns = [
    path(
        "",
        login_required(RedirectView.as_view(pattern_name="invoices:list", permanent=False)),
        name="home",
    ),
    path("invoices/", include("invoices.urls")),
    path("invoices/", include("invoices.editing")),
    path("api/", include("invoices.api")),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="invoices/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("clearance/", include("clearance.console.urls")),
    # AuthZEN: /authzen/access/v1/... and /.well-known/authzen-configuration/authzen
    path("authzen/", include("clearance.contrib.authzen.urls")),
    *well_known("authzen/"),
]

# A denial raised by clearance is a PermissionDenied: show which gate said no, and why.
handler403 = "invoices.views.permission_denied"
# "Not yours" and "does not exist" answer the same page (the invoices views render it themselves,
# also while DEBUG is on: invoices/notfound.py).
handler404 = "invoices.notfound.page_not_found"
