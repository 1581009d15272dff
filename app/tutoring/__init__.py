"""Tutoring: answer a student's question from a course's material, with page citations."""
