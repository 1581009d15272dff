"""Shared test factories."""
