"""Config section ``[eval]``: metrics, cut-offs and bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

from recagent.config import opt


@dataclass(frozen=True)
class EvalConfig:
    ks: list = opt([5, 10, 20], "cut-offs K for the @K metrics")
    bootstrap: int = opt(1000, "paired bootstrap resamples for confidence intervals")
    seed: int = opt(0, "seed of the bootstrap")
