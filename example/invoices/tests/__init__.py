"""Tests of the invoice-approval demo."""
