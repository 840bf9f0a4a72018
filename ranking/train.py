"""The one home of training: fit the recommenders of one protocol, save each with its config and
data fingerprint, and load them again only while that data is unchanged.

Everything that needs a fitted model goes through here: ``recagent train``, ``recagent eval``
(which then only scores), ``recagent recommend``, the chat's first start
(``agent/fusion_ranker.py``) and ``./run demo``. Where models live is ``recagent.runs``'s
business (``layout(cfg, ds).model(protocol, name)``); every saved model folder holds::

    model.json + state.npz (+ net.pt)   the model (``Recommender.save``)
    config.toml + run.json              the resolved config and the command (``runs.record_run``)
    data.json                           the data fingerprint, written last (``runs.write_fingerprint``)

so a half-written folder (no ``data.json``) counts as stale, never as usable.

Hyper-parameters: each model class declares its small validation grid (``param_grid``, a dict
of constructor argument -> values tried); the ``[ranking]`` config gives the base values and may
override a grid (``ranking.ease_grid`` ...). Every grid point is fit on *train* and the best by
validation NDCG@10 is kept. The fusion ranker then trains on top of those channel models (see
``ranking/fusion.py`` for its leakage scheme).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recagent.ranking.base import History, Recommender, valid_ndcg

Log = Callable[[str], None]


@dataclass
class Trained:
    """What one ``train`` call produced (eval scores these; nothing here is read from disk).

    Attributes:
        protocol: "A" or "B".
        split: the protocol's ``Split``.
        train: train-part ``History`` (what every model was fit on).
        models: fitted models by name (including the channels fitted for fusion).
        valid: validation NDCG@10 by model name.
        info: per model, what training chose (grid point, epochs, ...).
        timings: wall seconds per step.
        text_emb: item text embeddings (content model and fusion text channels), or None.
        fusion_features: the fusion training features, reused for ablation variants.
        n_select: the first ``n_select`` rows of ``fusion_features`` are the validation users.
        channels: the collaborative channel models fusion was given.
    """

    protocol: str
    split: Any
    train: History
    models: dict = field(default_factory=dict)
    valid: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    text_emb: np.ndarray | None = None
    fusion_features: tuple | None = None
    n_select: int | None = None
    channels: list = field(default_factory=list)


# -- what is trained, with which settings ---------------------------------------------------------
#: collaborative channels fusion fits first (``sasrec`` only where order matters, see below).
#: Measured on ML-100K Protocol A validation (out-of-fold NDCG@10 of the fused net, 5 members):
#: ease/itemknn/bpr 0.2252; + rp3beta, gfcf, userknn, dlae 0.2290; + slim and multivae 0.2335
#: (they fit in 6 s and 15 s on a quiet machine). Dropping any one channel from the eleven
#: (with text_hist, pop, recency) moved it by -0.004 .. +0.0003, so all stay.
FUSION_CHANNELS = ("ease", "itemknn", "bpr", "rp3beta", "gfcf", "userknn", "dlae", "slim", "multivae", "sasrec")


#: extra target sets for the fused net (``refit_folds``) per protocol. Measured on ML-100K
#: (busy 2-core machine): Protocol B, 1 set (each user's last train item, channels refit on what
#: came before): out-of-fold valid NDCG@10 0.1354 vs 0.1294 without, test 0.1141 vs 0.1120;
#: Protocol A, 2 random folds: test 0.2311 vs 0.2382 without (channels refit on half of train
#: are too unlike the full ones), so none there.
REFIT_FOLDS = {"A": 0, "B": 1}

#: fusion ensemble per protocol where ``ranking.fusion_members`` / ``fusion_repeats`` are 0:
#: ``members`` (the valid users cut into that many folds; member k trains on the others and stops
#: early on fold k) and ``repeats`` (the cut redrawn with another seed: a seed ensemble of
#: members x repeats nets). Measured on ML-100K Protocol A on one set of channel features
#: (2026-11-27, out-of-fold valid / test NDCG@10): 5 members, seeds 2020-2024: valid
#: 0.2292-0.2331, test 0.2394-0.2437 (mean 0.2413), and 3 or 5 cuts of them 0.2414 / 0.2412
#: (the seeds' mean, not better); 10 members, seeds 2020-2023: valid 0.2331-0.2351, test
#: 0.2427-0.2451 (each net trains on 90 % of the valid users instead of 80 %); 10 x 2: 0.2431.
#: What backs 10 x 2: out-of-fold valid favours more members partly because smaller
#: early-stopping folds bias it upward, so settings were compared by nested validation
#: (``benchmarks/fusion_nested.py``: the valid users cut into 3 outer folds, the whole fusion fit
#: on two and scored on the third, every valid user scored by a fusion that never saw them). Of
#: 5x1, 5x4, 10x2, 10x2 without ItemKNN, 20x1 and 10x4 (one cut), 10 x 2 scored best; over three
#: cuts 10x2 minus 5x1 was +0.0020, +0.0027, -0.0006, mean +0.0014 [+0.0000, +0.0029] (paired
#: bootstrap over users), a small, barely significant gain (an earlier single 70/30 hold-out:
#: +0.0023, -0.0037, -0.0012). Protocol B keeps its earlier measured setting (5 members, one cut).
FUSION_ENSEMBLE = {"A": {"members": 10, "repeats": 2}, "B": {"members": 5, "repeats": 1}}


def fusion_channels(protocol: str, models: list[str] | None = None, channels: list[str] | None = None) -> list[str]:
    """The collaborative channel models fusion fits first: ``channels`` or ``FUSION_CHANNELS``,
    the sequential one only where order matters (Protocol B, or when asked for)."""
    seq = protocol.upper() == "B" or "sasrec" in (models or [])
    return [c for c in (channels or FUSION_CHANNELS) if c != "sasrec" or seq]


def base_params(name: str, cfg: Any) -> dict:
    """Constructor arguments of model ``name`` from the ``[ranking]`` config (the rest are the
    class defaults)."""
    rc = cfg.ranking
    known = {
        "ease": dict(reg=rc.ease_reg),
        "itemknn": dict(k=rc.itemknn_k),
        "bpr": dict(dim=rc.bpr_dim, reg=rc.bpr_reg, epochs=rc.bpr_epochs, seed=rc.seed),
        "sasrec": dict(dim=rc.sasrec_dim, layers=rc.sasrec_layers, max_len=rc.sasrec_max_len, lr=rc.sasrec_lr,
                       epochs=rc.epochs, patience=rc.patience, seed=rc.seed),
        "fusion": dict(hidden=rc.fusion_hidden, epochs=rc.fusion_epochs, patience=rc.fusion_patience,
                       recency_days=rc.recency_days, members=rc.fusion_members, repeats=rc.fusion_repeats,
                       seed=rc.seed),
    }
    return dict(known.get(name, {}))


def param_grid(name: str, cfg: Any) -> list[dict]:
    """Grid points tried on validation: the model's ``param_grid``, unless the config sets
    ``ranking.<name>_grid`` (a list of values of the grid's one argument). An argument that the
    config sets away from its default (e.g. ``ranking.sasrec_max_len=50``) is fixed to that
    value: what the user set wins over the model's grid."""
    from recagent.ranking.registry import model_class

    grid = dict(getattr(model_class(name), "param_grid", {}) or {})
    defaults = base_params(name, type("Defaults", (), {"ranking": type(cfg.ranking)()})())
    for key, value in base_params(name, cfg).items():
        if key in grid and defaults.get(key) != value:
            del grid[key]
    override = getattr(cfg.ranking, f"{name}_grid", None)
    if override:
        arg = next(iter(grid)) if len(grid) == 1 else {"ease": "reg", "itemknn": "k", "content": "recent"}.get(name)
        if arg:
            grid = {arg: list(override)}
    if not grid:
        return [{}]
    keys = list(grid)
    return [dict(zip(keys, vals)) for vals in product(*(grid[k] for k in keys))]


def train_hint(ds: Any, protocol: str = "B", models: str = "fusion") -> str:
    """A ``recagent train`` command line that (re)trains ``models`` for this data set."""
    from recagent.runs import dataset_key

    key = dataset_key(ds)
    if getattr(ds, "builtin", False):
        data = f"--dataset {key}"
    else:
        data = (f"--dataset custom --set data.items={ds.catalog.source} "
                f"--set data.interactions={ds.interactions.source}")
    return f"recagent train {data} --protocol {protocol.upper()} --models {models}"


# -- fitting -------------------------------------------------------------------------------------
def fit_model(name: str, cfg: Any, split: Any, tr: History, text_emb: np.ndarray | None = None,
              log: Log = lambda s: None, grid: list[dict] | None = None) -> tuple[Recommender, float, dict]:
    """Fit every grid point of ``name`` on ``tr`` and keep the best by validation NDCG@10.

    Args:
        grid: grid points instead of :func:`param_grid`'s (benchmarks).

    Returns:
        ``(model, valid NDCG@10, info)``; ``info["chosen"]`` is the grid point kept.
    """
    from recagent.ranking.registry import model_class

    klass = model_class(name)
    grid = grid or param_grid(name, cfg)
    best = None
    for point in grid:
        params = {**base_params(name, cfg), **point}
        m = klass(**params)
        if hasattr(m, "set_embeddings"):
            if text_emb is None:
                raise ValueError(f"{name} needs item text embeddings")
            m.set_embeddings(text_emb)
        m.fit(tr, split.valid, items=split.items, log=log)
        vs = valid_ndcg(m, split.valid, items=split.items)
        if len(grid) > 1:
            log(f"  {name} {point}: valid ndcg@10 {vs:.4f}")
        if best is None or vs > best[1]:
            best = (m, vs, point)
    model, vs, point = best
    info = {**{k: v for k, v in model.info.items() if k != "grid"}, "chosen": point}
    if len(grid) > 1:
        model.info["grid"] = grid
    model.info["valid_ndcg@10"] = round(float(vs), 4)
    return model, vs, info


def train(cfg: Any, ds: Any, protocol: str, models: list[str], layout: Any = None, log: Log = lambda s: None,
          encoder: Any = None, save: bool = True, command: str = "recagent train", channels: list[str] | None = None,
          fusion_params: dict | None = None, grids: dict | None = None) -> Trained:
    """Fit ``models`` (and, for fusion, its channel models) on ``protocol``'s train split, and
    save each into ``layout.model(protocol, name)`` with config and data fingerprint.

    Args:
        cfg: the resolved config.
        ds: a loaded ``Dataset``.
        protocol: "A" or "B".
        models: names from ``MODEL_NAMES``.
        layout: a ``runs.RunLayout`` (default: ``runs.layout(cfg, ds)``).
        log: progress sink.
        encoder: text encoder for the content / fusion text channels (default: the configured
            one, loaded only when the embedding cache misses).
        save: write the models (eval of a throw-away config may skip it).
        command: recorded in each model's ``run.json``.
        channels: the collaborative channels of fusion (default ``FUSION_CHANNELS``).
        fusion_params: ``FusionRanker`` arguments over the config's (e.g. ``refit_folds``, ``loss``).
        grids: ``{model: [grid points]}`` instead of the models' own grids (benchmarks).
    """
    import torch

    from recagent.data import make_split
    from recagent.runs import layout as run_layout

    protocol = protocol.upper()
    torch.manual_seed(cfg.ranking.seed)
    split = make_split(ds, protocol, cfg.data)
    tr = History.from_frame(split.train, split.n_users, split.n_items)
    t = Trained(protocol, split, tr)
    t.channels = fusion_channels(protocol, models, channels) if "fusion" in models else []
    need = list(dict.fromkeys([m for m in models if m != "fusion"] + t.channels))
    if "content" in need or "fusion" in models:
        t0 = time.time()
        t.text_emb = text_embeddings(cfg, ds, log, encoder)
        t.timings["text_embeddings"] = round(time.time() - t0, 1)
    for name in need:
        t0 = time.time()
        log(f"[{protocol}] fitting {name} ...")
        t.models[name], t.valid[name], t.info[name] = fit_model(name, cfg, split, tr, t.text_emb, log,
                                                                (grids or {}).get(name))
        t.timings[name] = round(time.time() - t0, 1)
        log(f"[{protocol}] {name}: valid ndcg@10 {t.valid[name]:.4f} ({t.timings[name]} s) {t.info[name]}")
    if "fusion" in models:
        t0 = time.time()
        _train_fusion(cfg, t, log, fusion_params)
        t.timings["fusion"] = round(time.time() - t0, 1)
    if save:
        lay = layout or run_layout(cfg, ds)
        for name, m in t.models.items():
            save_model(cfg, ds, m, lay.model(protocol, name), command)
        log(f"[{protocol}] models saved under {lay.models(protocol)}")
    return t


def _train_fusion(cfg: Any, t: Trained, log: Log, fusion_params: dict | None = None) -> None:
    from recagent.ranking.fusion import FusionRanker, make_sources

    split, tr = t.split, t.train
    params = {"refit_folds": REFIT_FOLDS.get(t.protocol, 0), **base_params("fusion", cfg), **(fusion_params or {})}
    for key, value in FUSION_ENSEMBLE.get(t.protocol, {"members": 5, "repeats": 1}).items():
        if not params.get(key):
            params[key] = value
    fusion = FusionRanker(**params)
    base = {k: v for k, v in t.models.items() if k in t.channels}
    src = make_sources(tr, {**fusion.params, "channels": list(base)}, base, t.text_emb, None, None, log)
    log("fusion: computing training features (valid targets, train-only channels) ...")
    feats = fusion.training_features(tr, split.valid, src=src, items=split.items)
    n_valid = len(feats[0])
    folds = int(fusion.params.get("refit_folds", 0) or 0)
    if folds:
        t0 = time.time()
        try:
            extra = refit_features(t, base, folds, fusion.params["recency_days"], log)
        except ValueError as exc:   # e.g. a sequential channel with no sequence left to learn from
            log(f"fusion: no refit targets (a channel cannot be refit on the reduced train data: {exc}); "
                "training on the valid targets only")
            extra = None
        if extra is not None:
            feats = tuple(np.concatenate([a, b]) for a, b in zip(feats, extra))
        del extra
        t.timings["fusion_refit_folds"] = round(time.time() - t0, 1)
    t.fusion_features, t.n_select = feats, n_valid
    fusion.fit(tr, split.valid, items=split.items, features=feats, src=src, n_select=n_valid, log=log)
    # full-ranking, out-of-fold validation NDCG@10 of what is served (the members' own
    # early-stopping numbers are on shortlists, so higher than full ranking)
    fusion.info["valid_ndcg@10"] = fusion.info.get("served_valid_ndcg10", fusion.info.get("holdout_ndcg10"))
    log(f"fusion: {fusion.info}")
    t.models["fusion"] = fusion
    t.valid["fusion"] = float(fusion.info["valid_ndcg@10"] if fusion.info["valid_ndcg@10"] is not None else float("nan"))
    t.info["fusion"] = {**fusion.info, "gate_base": fusion.gate_weights()}


def refit_folds(t: Trained, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(fit rows, target rows)`` of the train frame for each of ``k`` extra target sets.

    Protocol A (random split): the train interactions are cut into ``k`` random folds; fold j's
    channels are fit on the other folds and fold j's items are the targets. Protocol B
    (leave-one-out by time): set j's targets are each user's (j+1)-th last train interaction and
    its channels are fit on what came before it, so the extra targets look like the test ones
    (a next item after a history). Either way a target is never in the data its channel scores
    come from.
    """
    f = t.split.train
    n = len(f)
    if t.protocol == "A":
        fold = np.random.default_rng(2020).permutation(n) % k
        return [(np.flatnonzero(fold != j), np.flatnonzero(fold == j)) for j in range(k)]
    f = f.reset_index(drop=True)
    keys = ["uidx", "timestamp"] + (["row"] if "row" in f else [])
    srt = f.sort_values(keys, kind="stable")
    pos = srt.groupby("uidx").cumcount(ascending=False).reindex(f.index).to_numpy()   # 0 = last
    size = f.groupby("uidx")["uidx"].transform("size").to_numpy()
    return [(np.flatnonzero(pos > j), np.flatnonzero((pos == j) & (size > j + 1))) for j in range(k)]


def refit_features(t: Trained, models: dict, k: int, recency_days: float, log: Log = lambda s: None) -> tuple:
    """Fusion training features of the extra target sets of :func:`refit_folds` (every channel
    refit with the hyper-parameters and epochs chosen on validation)."""
    from recagent.ranking.features import FeatureSources
    from recagent.ranking.fusion import training_features

    f = t.split.train.reset_index(drop=True)
    parts = []
    for j, (fit_rows, tgt_rows) in enumerate(refit_folds(t, k)):
        hist = History.from_frame(f.iloc[fit_rows], t.split.n_users, t.split.n_items)
        refit = {}
        for name, m in models.items():
            params = dict(m.params)
            if "best_epoch" in m.info and "epochs" in params:
                params["epochs"] = int(m.info["best_epoch"])
            refit[name] = type(m)(**params).fit(hist)
        log(f"fusion: refit fold {j + 1}/{k} ({len(tgt_rows)} targets)")
        src = FeatureSources(refit, t.text_emb, None, None, hist.frame, recency_days, t.split.n_items)
        parts.append(training_features(src, hist, f.iloc[tgt_rows], t.split.items))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(5))


def fusion_variants(cfg: Any, t: Trained, log: Log = lambda s: None) -> dict:
    """Ablation variants of the trained fusion model (one net each, same features): every
    available channel alone, all, and all but each. Returns ``{label: FusionRanker}``."""
    from recagent.ranking.features import CHANNELS
    from recagent.ranking.fusion import FusionRanker

    full = t.models["fusion"]
    # offline data has no profile texts, so the profile channels are always masked there
    avail = [c for c in CHANNELS if full.src.available(c) and c not in ("text_profile", "xmodal_profile")]
    sets = {"all": avail}
    sets.update({f"only {c}": [c] for c in avail})
    sets.update({f"all - {c}": [x for x in avail if x != c] for c in avail})
    out = {}
    for label, chans in sets.items():
        f = FusionRanker(channels=chans, **{**base_params("fusion", cfg), "members": 1, "repeats": 1, "select": False})  # one net each
        f.fit(t.train, t.split.valid, items=t.split.items, features=t.fusion_features, src=full.src, n_select=t.n_select)
        out[label] = f
    return out


def save_model(cfg: Any, ds: Any, model: Recommender, directory: Path, command: str = "recagent train") -> Path:
    """Save ``model`` with its resolved config and, last, its data fingerprint."""
    from recagent.runs import FINGERPRINT_FILE, record_run, write_fingerprint

    directory = Path(directory)
    (directory / FINGERPRINT_FILE).unlink(missing_ok=True)   # stale until the new model is complete
    model.save(directory)
    record_run(cfg, directory, command, {"model": model.name})
    write_fingerprint(directory, ds)
    return directory


def load_or_train(cfg: Any, ds: Any, protocol: str, models: list[str], layout: Any = None,
                  log: Log = lambda s: None, allow_train: bool = True, encoder: Any = None,
                  command: str = "recagent train") -> dict[str, Recommender]:
    """The saved models when they were trained on this very data, else train them now (and
    say so), or with ``allow_train=False`` refuse with a one-line ``StaleRunError``.

    Args:
        cfg: the resolved config.
        ds: the data set in use.
        protocol: "A" or "B".
        models: model names wanted.
        layout: a ``runs.RunLayout`` (default: ``runs.layout(cfg, ds)``).
        log: progress sink.
        allow_train: train missing or stale models (False: raise ``StaleRunError``).
        encoder: see ``train``.
        command: recorded beside newly trained models.

    Returns:
        ``{name: fitted model}`` for every name in ``models``.
    """
    from recagent.runs import StaleRunError, check_fingerprint
    from recagent.runs import layout as run_layout

    lay = layout or run_layout(cfg, ds)
    protocol = protocol.upper()
    out: dict[str, Recommender] = {}
    missing = []
    for name in models:
        d = lay.model(protocol, name)
        fix = train_hint(ds, protocol, name)
        if (d / "model.json").is_file():
            try:
                check_fingerprint(d, ds, f"the saved {name} model", fix)
                out[name] = Recommender.load(d)
                continue
            except StaleRunError as exc:
                if not allow_train:
                    raise
                log(f"{exc.args[0].split('; rebuild it')[0]}: retraining it")
        elif not allow_train:
            raise StaleRunError(f"no trained {name} model for {ds.name} (Protocol {protocol}) in {d}; train it: {fix}")
        else:
            log(f"no trained {name} model for {ds.name} (Protocol {protocol}) in {d}: training it (one-off) ...")
        missing.append(name)
    if missing:
        t = train(cfg, ds, protocol, missing, lay, log, encoder=encoder, command=command)
        out.update({n: t.models[n] for n in missing})
    return {n: out[n] for n in models}


# -- item text embeddings -----------------------------------------------------------------------
def text_embeddings(cfg: Any, ds: Any, log: Log = lambda s: None, encoder: Any = None) -> np.ndarray:
    """Item text embeddings (cached by encoder name + catalog hash)."""
    from recagent.ranking.content import item_text_embeddings

    log("embedding item texts (cached after the first run) ...")
    return item_text_embeddings(ds.catalog, encoder or _LazyEncoder(cfg), cfg.paths.cache / "embeddings")


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
