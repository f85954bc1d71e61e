"""Persistence: the only subpackage that speaks SQL."""
