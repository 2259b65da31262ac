"""Integrations: views (``clearance.contrib.views``), Django REST framework
(``clearance.contrib.drf``), the admin (``clearance.contrib.admin``) and the middleware that
notices a view answered without any authorization decision (``clearance.contrib.guard``).

Every integration calls the engine directly (``authorize``, ``authorized``), never
``user.has_perm(perm, obj)``, so policies and invariants bind superusers too.
"""
