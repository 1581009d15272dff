"""Tests of the FastAPI app."""
