"""Fixtures of the app tests: the live server on the sample course (see tests/utils/server.py)."""

from tests.utils.server import live_server, sample_course_index  # noqa: F401
