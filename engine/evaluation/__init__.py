"""Evaluation of the grounded-answer path: pure answer metrics and the loop over a questions file."""
