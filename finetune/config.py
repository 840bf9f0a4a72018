"""Config section ``[finetune]``: LoRA for the LLM, its training data, and the finetune stages."""

from __future__ import annotations

from dataclasses import dataclass

from recagent.config import opt


@dataclass(frozen=True)
class FinetuneConfig:
    lora_r: int = opt(8, "LoRA rank", min=1)
    lora_alpha: int = opt(16, "LoRA scaling numerator (alpha / r scales the update)", min=1)
    lora_dropout: float = opt(0.05, "dropout on the LoRA branch", min=0, lt=1)
    lora_targets: list = opt(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                             "modules that get LoRA (Llama names: attention and MLP)")
    learning_rate: float = opt(4e-4, "AdamW learning rate of LoRA training", gt=0)
    epochs: int = opt(1, "passes over the SFT examples (when --steps / finetune.steps is 0)", min=1)
    steps: int = opt(0, "LoRA optimizer steps; 0 = epochs x examples / batch", min=0)
    batch_size: int = opt(4, "examples per optimizer step (SmolLM2-135M on 2 cores: batch 4 without checkpointing "
                                    "ran 227 tokens/s at 4.5 GiB peak RSS; batch 8 with it 153 tokens/s, 3.0 GiB)", min=1)
    group_by_length: bool = opt(True, "batch examples of similar length together (padding on ML-100K: 1.16x -> "
                                      "1.01x the real tokens)")
    gradient_checkpointing: bool = opt(False, "recompute activations in the backward pass: ~1/3 more compute, a "
                                             "fraction of the memory (batch 8 without it peaked at 6.7 GiB RSS on CPU)")
    max_seq_len: int = opt(320, "prompt + target tokens; longer examples are cut from the prompt's left", min=1)
    checkpoint_every: int = opt(25, "save adapter + optimizer every N steps (resume point of a killed run)", min=1)
    seed: int = opt(0, "seed of data sampling, example order and LoRA init", min=0)
    max_examples: int = opt(1200, "cap on SFT examples built from the logs (profile + reason)", min=1)
    profile_share: float = opt(0.4, "share of the examples that are profile examples (the rest: reasons)", min=0, max=1)
    profile_cutoff: float = opt(0.8, "a profile example sees the first 80 % of a user's history; targets come from "
                                     "the items liked after it", gt=0, lt=1)
    profile_rule_users: int = opt(100, "training users on whom every profile rule is scored by what it retrieves "
                                         "of their later likes (the best rules become the targets)", min=1)
    profile_rules: int = opt(1, "house rules kept; each user's target is the one of them that fits their later likes "
                                "best (1 = one rule for everyone: a choice made by the future is one the model cannot "
                                "learn from the prompt, so it only adds noise to the targets)", min=1)
    min_history: int = opt(5, "users with fewer interactions give no profile example", min=1)
    heldout_users: int = opt(200, "users kept out of the LLM training data, for the before/after evaluation", min=0)
    reason_sample_sheets: int = opt(120, "fact sheets whose reason targets are sampled from the base model (the rest "
                                         "are varied templates); sampling costs ~1 s per sheet on 2 cores", min=0)
    reason_candidates: int = opt(4, "samples per fact sheet in rejection sampling", min=1)
    reason_temperature: float = opt(0.9, "sampling temperature of the candidates", gt=0, max=2)
    eval_pairs: int = opt(300, "held-out (user, item) pairs whose reasons are compared before/after", min=1)
    eval_users: int = opt(200, "held-out users whose profiles are compared before/after (Recall@50; on ML-100K "
                                    "100 users gave a CI 0.057 wide)", min=1)
