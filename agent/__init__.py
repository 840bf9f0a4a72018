"""recagent.agent."""
