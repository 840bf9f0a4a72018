"""Config section ``[finetune]``: LoRA, CLIP training and ranker retraining."""

from __future__ import annotations

from dataclasses import dataclass

from recagent.config import opt


@dataclass(frozen=True)
class FinetuneConfig:
    lora_r: int = opt(8, "LoRA rank")
    lora_alpha: int = opt(16, "LoRA scaling numerator (alpha / r scales the update)")
    lora_dropout: float = opt(0.05, "dropout on the LoRA branch")
    learning_rate: float = opt(2e-4, "AdamW learning rate of LoRA training")
    epochs: int = opt(1, "passes over the SFT examples")
    max_examples: int = opt(2000, "cap on SFT examples built from the logs")
