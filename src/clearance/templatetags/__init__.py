"""Template tags: ``{% load clearance %}``."""
