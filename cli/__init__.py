"""The `tutor` command line: the one place that wires ingest, retrieval, app and training."""
