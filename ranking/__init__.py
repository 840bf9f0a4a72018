"""recagent.ranking."""
