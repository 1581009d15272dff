"""An OpenAI-compatible API: each course is a model, ``tutor/<course>``, answering with citations."""
