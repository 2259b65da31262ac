"""Invoice approval: the demo app protected by clearance's three gates."""
