"""Helpers shared by the cogs."""
