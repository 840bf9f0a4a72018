"""recagent.retrieval."""
