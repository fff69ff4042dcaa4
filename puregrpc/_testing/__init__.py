"""Helpers for puregrpc's own tests."""
