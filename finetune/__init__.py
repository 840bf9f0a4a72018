"""recagent.finetune."""
