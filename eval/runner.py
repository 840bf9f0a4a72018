"""One offline comparison: split -> tune/fit baselines on train (valid for selection) -> fusion
trained on valid targets -> every model scored on test with train+valid histories -> metrics,
paired bootstrap CIs vs the best baseline (chosen on validation), ablations, saved models."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recagent.eval.bootstrap import paired_bootstrap
from recagent.eval.protocol import EvalResult, evaluate_scores, genre_vectors
from recagent.ranking.base import History, valid_ndcg
from recagent.ranking.registry import MODEL_NAMES

BASELINES = ("pop", "itemknn", "ease", "bpr", "sasrec", "content")


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

    def to_json(self) -> dict:
        return {"protocol": self.protocol, "results": self.results, "valid_ndcg@10": self.valid,
                "best_baseline": self.best_baseline, "ci_vs_best_baseline": self.ci, "ablations": self.ablations,
                "timings_s": self.timings, "info": self.info}


def parse_models(text: str) -> list[str]:
    from recagent.errors import ConfigError

    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    if names == ["all"]:
        return list(MODEL_NAMES)
    bad = [m for m in names if m not in MODEL_NAMES]
    if bad or not names:
        raise ConfigError(f"--models {text!r}: unknown model(s) {bad}; choose from {','.join(MODEL_NAMES)} or 'all'.")
    return names


def run_eval(cfg: Any, dataset: Any, protocol: str, models: list[str], run_dir: Path,
             log: Callable[[str], None] = lambda s: None, encoder: Any = None) -> EvalRun:
    """Run the comparison and save the fitted models under ``run_dir/models/<name>``.

    Args:
        cfg: the resolved config.
        dataset: a loaded ``Dataset``.
        protocol: "A" or "B".
        models: names from ``MODEL_NAMES``.
        run_dir: where models (and the resolved config) are written.
        log: progress sink.
        encoder: text encoder for the content / fusion text channels (default: the configured
            sentence-transformers model, loaded only when the embedding cache misses).
    """
    import torch

    from recagent.data import make_split

    torch.manual_seed(cfg.ranking.seed)
    run_dir = Path(run_dir)
    split = make_split(dataset, protocol, cfg.data)
    items = split.items
    tr = History.from_frame(split.train, split.n_users, split.n_items)
    trv = History.concat(split.train, split.valid, n_users=split.n_users, n_items=split.n_items)
    users = split.users
    pop = np.asarray(tr.matrix.sum(0)).ravel()
    gv = genre_vectors(dataset.catalog)
    need = set(models)
    if "fusion" in models:
        need |= {"ease", "itemknn", "bpr"} | ({"sasrec"} if protocol.upper() == "B" or "sasrec" in models else set())
    fitted, valid_scores, timings, infos = {}, {}, {}, {}
    text_emb = None
    if "content" in need or "fusion" in need:
        t = time.time()
        text_emb = _text_embeddings(cfg, dataset, log, encoder)
        timings["text_embeddings"] = round(time.time() - t, 1)
    for name in [m for m in BASELINES if m in need]:
        t = time.time()
        log(f"[{protocol}] fitting {name} ...")
        model, vs, info = _fit_baseline(name, cfg, split, tr, items, text_emb, log)
        fitted[name], valid_scores[name], infos[name] = model, vs, info
        timings[name] = round(time.time() - t, 1)
        log(f"[{protocol}] {name}: valid ndcg@10 {vs:.4f} ({timings[name]} s) {info}")
    ks = list(cfg.eval.ks)
    results, per_user, top = {}, {}, {}
    ev = lambda fn: evaluate_scores(fn, users, trv, split.test, items, ks, 100, pop, gv)  # noqa: E731
    for name in [m for m in BASELINES if m in models]:
        r = ev(lambda ub, m=fitted[name]: m.score(ub, trv))
        results[name], per_user[name], top[name] = r.means(), r.per_user, r.top
    ablations: dict = {}
    if "fusion" in models:
        t = time.time()
        fusion, ablations, r = _fusion(cfg, split, tr, trv, items, fitted, text_emb, users, ev, log)
        timings["fusion"] = round(time.time() - t, 1)
        fitted["fusion"] = fusion
        valid_scores["fusion"] = fusion.info.get("holdout_ndcg10", float("nan"))
        infos["fusion"] = {**fusion.info, "gate_base": fusion.gate_weights()}
        results["fusion"], per_user["fusion"], top["fusion"] = r.means(), r.per_user, r.top
    for name, m in fitted.items():
        m.save(run_dir / "models" / name)
    cand = [m for m in results if m in BASELINES]
    best = max(cand, key=lambda m: valid_scores.get(m, -1)) if cand else ""
    ci = {}
    if best:
        for name in results:
            if name == best:
                continue
            ci[name] = {met: paired_bootstrap(per_user[name][met], per_user[best][met], cfg.eval.bootstrap, cfg.eval.seed)
                        for met in ("ndcg@10", "recall@10")}
    return EvalRun(protocol.upper(), results, per_user, {k: round(float(v), 4) for k, v in valid_scores.items()},
                   timings, ablations, ci, best, infos, top)


def _text_embeddings(cfg, dataset, log, encoder=None):
    from recagent.ranking.content import item_text_embeddings

    log("embedding item texts (cached after the first run) ...")
    return item_text_embeddings(dataset.catalog, encoder or _LazyEncoder(cfg), cfg.paths.cache / "embeddings")


class _LazyEncoder:
    """Loads the real encoder only on a cache miss (its name is known from the config)."""

    def __init__(self, cfg):
        self.cfg = cfg
        from recagent.retrieval.encoders import TextEncoder

        self.name = TextEncoder.name_for(cfg.models.text_encoder)
        self._enc = None

    def _get(self):
        if self._enc is None:
            from recagent.retrieval.encoders import TextEncoder

            self._enc = TextEncoder.from_config(self.cfg)
        return self._enc

    @property
    def dim(self):
        return self._get().dim

    def embed_texts(self, texts, **kw):
        return self._get().embed_texts(texts, **kw)


def _fit_baseline(name, cfg, split, tr, items, text_emb, log):
    from recagent.ranking.baselines import EASE, ItemKNN, Pop
    from recagent.ranking.bpr import BPRMF
    from recagent.ranking.content import ContentKNN
    from recagent.ranking.sasrec import SASRec

    rc = cfg.ranking
    grids = {"ease": [{"reg": r} for r in (rc.ease_grid or [rc.ease_reg])],
             "itemknn": [{"k": k} for k in (rc.itemknn_grid or [rc.itemknn_k])],
             "content": [{"recent": r} for r in (rc.content_grid or [0])]}
    if name in grids:
        best = None
        for params in grids[name]:
            m = {"ease": EASE, "itemknn": ItemKNN, "content": ContentKNN}[name](**params)
            if name == "content":
                m.set_embeddings(text_emb)
            m.fit(tr)
            vs = valid_ndcg(m, split.valid, items=items)
            if best is None or vs > best[1]:
                best = (m, vs, params)
        best[0].info["grid"] = grids[name]
        return best[0], best[1], {"chosen": best[2]}
    if name == "pop":
        m = Pop().fit(tr)
    elif name == "bpr":
        m = BPRMF(dim=rc.bpr_dim, reg=rc.bpr_reg, epochs=rc.bpr_epochs, seed=rc.seed).fit(tr, split.valid, items=items)
    elif name == "sasrec":
        m = SASRec(dim=rc.sasrec_dim, layers=rc.sasrec_layers, max_len=rc.sasrec_max_len, lr=rc.sasrec_lr,
                   epochs=rc.epochs, patience=rc.patience, seed=rc.seed).fit(tr, split.valid, items=items, log=log)
    return m, valid_ndcg(m, split.valid, items=items), dict(m.info)


def _fusion(cfg, split, tr, trv, items, fitted, text_emb, users, ev, log):
    """Train the full fusion model and (optionally) its ablations on shared precomputed features."""
    import torch

    from recagent.ranking.fusion import FusionRanker, make_sources, train_fusion
    from recagent.ranking.features import CHANNELS

    rc = cfg.ranking
    params = dict(hidden=rc.fusion_hidden, epochs=rc.fusion_epochs, patience=rc.fusion_patience,
                  recency_days=rc.recency_days, members=rc.fusion_members, seed=rc.seed)
    base = {k: v for k, v in fitted.items() if k in ("ease", "itemknn", "bpr", "sasrec")}
    full = FusionRanker(**params)
    full.items_ = np.asarray(items)
    full.src = make_sources(tr, full.params, base, text_emb, None, None, log)
    log("fusion: computing training features (valid targets, train-only channels) ...")
    feats = full.training_features(tr, split.valid)
    full.fit(tr, split.valid, items=items, features=feats, log=log)
    log(f"fusion: {full.info}")
    test_X = full._features_all(users, trv, users, full.items_)
    res = ev(lambda ub: _score_from(full, users, test_X, ub))
    ablations = {}
    if rc.ablations:
        # offline eval has no profile texts, so the profile channels are always masked here
        avail = [c for c in CHANNELS if full.src.available(c) and c not in ("text_profile", "xmodal_profile")]
        sets = {"all": avail}
        sets.update({f"only {c}": [c] for c in avail})
        sets.update({f"all - {c}": [x for x in avail if x != c] for c in avail})
        for label, chans in sets.items():
            f = FusionRanker(channels=chans, **{**params, "members": 1})  # one net per row (time)
            f.items_, f.src, f.train_ = full.items_, full.src, tr
            f._fit(tr, split.valid, items=items, features=feats)
            r = ev(lambda ub, f=f: _score_from(f, users, test_X, ub))
            m = r.means()
            ablations[label] = {"ndcg@10": m["ndcg@10"], "recall@10": m["recall@10"],
                                "holdout_ndcg@10": f.info.get("holdout_ndcg10")}
            log(f"fusion ablation {label}: test ndcg@10 {m['ndcg@10']:.4f}")
    return full, ablations, res


def _score_from(f, all_users, feats, ub):
    """Scores of users ``ub`` from precomputed test features (rows aligned with ``all_users``)."""
    import torch

    X, M, ctx, cand = feats
    rows = np.searchsorted(all_users, ub)
    sf, sc = f._select(0)
    with torch.inference_mode():
        logits = f.net(torch.from_numpy(np.ascontiguousarray(X[rows][:, :, sf])),
                       torch.from_numpy(np.ascontiguousarray(M[rows][:, :, sc])),
                       torch.from_numpy(np.ascontiguousarray(ctx[rows][:, [0] + [1 + c for c in sc]]))).numpy()
    out = np.full((len(ub), f.train_.n_items), -np.inf, np.float32)
    out[:, f.items_] = logits
    return out
