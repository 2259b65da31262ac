"""The benchmark scenario: tenants, memberships and invoices, and their approval rule."""
