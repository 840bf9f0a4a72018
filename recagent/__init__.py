"""recagent: an LLM-driven conversational recommender agent."""

__version__ = "0.1.0"
