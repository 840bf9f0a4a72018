"""recagent.eval."""
