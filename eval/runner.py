"""One offline comparison: the training home (``ranking/train.py``) fits and saves the models ->
every model scored on test with train+valid histories -> metrics, paired bootstrap CIs vs the
best single model (chosen on validation), fusion ablations. Eval only evaluates."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recagent.eval.bootstrap import paired_bootstrap
from recagent.eval.protocol import EvalResult, evaluate_scores, genre_vectors
from recagent.ranking.base import History
from recagent.ranking.registry import ALL_MODEL_NAMES


@dataclass
class EvalRun:
    """Everything one ``run_eval`` produced."""

    protocol: str
    results: dict
    per_user: dict
    valid: dict
    timings: dict
    ablations: dict = field(default_factory=dict)
    ci: dict = field(default_factory=dict)
    best_baseline: str = ""
    info: dict = field(default_factory=dict)
    top: dict = field(default_factory=dict)

    @property
    def fusion_selection(self) -> dict:
        """What the fusion model serves and the validation scores it was chosen on (``{}``
        without fusion): ``{"served": words, "valid_ndcg@10": {candidate: score}}``."""
        return dict(self.info.get("fusion", {}).get("selection", {}))

    def to_json(self) -> dict:
        return {"protocol": self.protocol, "results": self.results, "valid_ndcg@10": self.valid,
                "best_baseline": self.best_baseline, "ci_vs_best_baseline": self.ci, "ablations": self.ablations,
                "fusion_selection": self.fusion_selection, "timings_s": self.timings, "info": self.info}


def parse_models(text: str) -> list[str]:
    from recagent.errors import ConfigError

    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    if names == ["all"]:
        return list(ALL_MODEL_NAMES)
    bad = [m for m in names if m not in ALL_MODEL_NAMES]
    if bad or not names:
        raise ConfigError(f"--models {text!r}: unknown model(s) {bad}; choose from {','.join(ALL_MODEL_NAMES)} or 'all'.")
    return names


def run_eval(cfg: Any, dataset: Any, protocol: str, models: list[str], layout: Any = None,
             log: Callable[[str], None] = lambda s: None, encoder: Any = None, save: bool = True,
             channels: list[str] | None = None, fusion_params: dict | None = None, grids: dict | None = None) -> EvalRun:
    """Fit ``models`` through the training home (``ranking/train.py``, which saves them) and
    score them on the test split.

    Args:
        cfg: the resolved config.
        dataset: a loaded ``Dataset``.
        protocol: "A" or "B".
        models: names from ``MODEL_NAMES``.
        layout: a ``runs.RunLayout`` or a run folder (default: the data set's folder under runs).
        log: progress sink.
        encoder: text encoder for the content / fusion text channels (default: the configured
            sentence-transformers model, loaded only when the embedding cache misses).
        save: save the trained models (with config and data fingerprint).
        channels / fusion_params / grids: see ``ranking.train.train``.
    """
    from recagent.ranking.train import train
    from recagent.runs import RunLayout

    if layout is not None and not isinstance(layout, RunLayout):
        layout = RunLayout(Path(layout))
    protocol = protocol.upper()
    t = train(cfg, dataset, protocol, models, layout, log, encoder=encoder, save=save, command="recagent eval",
              channels=channels, fusion_params=fusion_params, grids=grids)
    split = t.split
    items, users = split.items, split.users
    trv = History.concat(split.train, split.valid, n_users=split.n_users, n_items=split.n_items)
    pop = np.asarray(t.train.matrix.sum(0)).ravel()
    gv = genre_vectors(dataset.catalog)
    ks = list(cfg.eval.ks)
    ev = lambda fn: evaluate_scores(fn, users, trv, split.test, items, ks, 100, pop, gv)  # noqa: E731
    results, per_user, top = {}, {}, {}
    for name in [m for m in models if m != "fusion"]:
        r = ev(lambda ub, m=t.models[name]: m.score(ub, trv))
        results[name], per_user[name], top[name] = r.means(), r.per_user, r.top
    ablations: dict = {}
    if "fusion" in models:
        t0 = time.time()
        ablations, r = _eval_fusion(cfg, t, trv, users, ev, log)
        t.timings["fusion_eval"] = round(time.time() - t0, 1)
        results["fusion"], per_user["fusion"], top["fusion"] = r.means(), r.per_user, r.top
    cand = [m for m in results if m != "fusion"]
    best = max(cand, key=lambda m: t.valid.get(m, -1)) if cand else ""
    ci = {}
    if best:
        for name in results:
            if name == best:
                continue
            ci[name] = {met: paired_bootstrap(per_user[name][met], per_user[best][met], cfg.eval.bootstrap, cfg.eval.seed)
                        for met in ("ndcg@10", "recall@10")}
    valid = {k: round(float(v), 4) for k, v in t.valid.items() if k in models or k == "fusion"}
    return EvalRun(protocol, results, per_user, valid, t.timings, ablations, ci, best,
                   {k: v for k, v in t.info.items() if k in models}, top)


def _eval_fusion(cfg, t, trv, users, ev, log):
    """Score the fused model (and, with ``ranking.ablations``, its variants) on test from one
    set of precomputed test features."""
    from recagent.ranking.fusion import features_all
    from recagent.ranking.train import fusion_variants

    full = t.models["fusion"]
    test_X = features_all(full.src, users, trv, users, full.items_)  # once, for every variant
    res = ev(lambda ub: _score_from(full, users, test_X, ub))
    ablations = {}
    if cfg.ranking.ablations:
        for label, f in fusion_variants(cfg, t, log).items():
            m = ev(lambda ub, f=f: _score_from(f, users, test_X, ub)).means()
            ablations[label] = {"ndcg@10": m["ndcg@10"], "recall@10": m["recall@10"],
                                "holdout_ndcg@10": f.info.get("holdout_ndcg10")}
            log(f"fusion ablation {label}: test ndcg@10 {m['ndcg@10']:.4f}")
    return ablations, res


def _score_from(f, all_users, feats, ub):
    """Scores of users ``ub`` from precomputed test features (rows aligned with ``all_users``)."""
    out = np.full((len(ub), f.train_.n_items), -np.inf, np.float32)
    out[:, f.items_] = f.score_features(feats, np.searchsorted(all_users, ub))
    return out
