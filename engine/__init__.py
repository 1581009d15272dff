"""The model core: runtimes (generation, streaming, scoring), batching and the MCQ engine. No FastAPI."""
