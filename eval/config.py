"""Config section ``[eval]``: metrics, cut-offs and bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

from recagent.config import Rule, opt


@dataclass(frozen=True)
class EvalConfig:
    ks: list = opt([5, 10, 20], "cut-offs K for the @K metrics", items=Rule(int, min=1), length=(1, None),
                check=lambda ks: None if len(set(ks)) == len(ks) else "lists a K twice; give each K once")
    bootstrap: int = opt(1000, "paired bootstrap resamples for confidence intervals", min=1)
    seed: int = opt(0, "seed of the bootstrap", min=0)
