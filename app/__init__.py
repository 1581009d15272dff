"""The tutor service: model runtime, MCQ engine and the FastAPI app."""
