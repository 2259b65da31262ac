"""The demo project: settings and URL configuration for the invoice-approval example."""
