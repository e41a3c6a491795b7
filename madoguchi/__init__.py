"""Madoguchi: the support window."""
