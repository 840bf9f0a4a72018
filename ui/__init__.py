"""recagent.ui."""
