"""Framework extensions."""
