"""Multiple-choice answering: letter extraction, log-likelihood scoring, metrics, the engine and routes."""
