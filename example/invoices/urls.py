"""URLs of the invoices app."""

from django.urls import path

from . import views
from .notfound import not_found_page

app_name = "invoices"

urlpatterns = [
    path("", not_found_page(views.invoice_list), name="list"),
    path("<int:pk>/", not_found_page(views.invoice_detail), name="detail"),
    path("<int:pk>/submit/", not_found_page(views.submit), name="submit"),
    path("<int:pk>/approve/", not_found_page(views.approve), name="approve"),
    path("<int:pk>/pay/", not_found_page(views.pay), name="pay"),
]
