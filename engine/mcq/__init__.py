"""The MCQ engine: letters, scoring of options, metrics and file evaluation."""
