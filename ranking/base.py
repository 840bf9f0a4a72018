"""The one recommender contract (``fit`` / ``score`` / ``recommend`` / ``save`` / ``load``) and
``History``, the per-user interaction data every model reads.

Models work on dense indices (``uidx``/``iidx`` of ``recagent.data``); the CLI maps back to
original ids at the edges. ``score`` returns a dense ``(len(users), n_items)`` matrix, which is
cheap for catalogs of a few thousand items and lets eval do full ranking over all items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recagent.errors import ConfigError
from recagent.eval.metrics import ndcg_from_scores, relevance, topk  # a leaf: imports nothing of ours

__all__ = ["History", "Recommender", "as_history", "mask_scores", "topk", "valid_ndcg"]


@dataclass
class History:
    """What is known about users at one point in time (e.g. the train part of a split).

    Attributes:
        matrix: binary CSR ``(n_users, n_items)``; row u marks the items u interacted with.
        sequences: per user, item indices in time order (ties by file row).
        last_time: per user, the timestamp of the latest interaction (NaN when none).
        frame: the interactions themselves (``uidx``, ``iidx``, ``timestamp``, ``row``).
    """

    matrix: sp.csr_matrix
    sequences: list
    last_time: np.ndarray
    frame: pd.DataFrame

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @classmethod
    def from_frame(cls, df: pd.DataFrame, n_users: int, n_items: int) -> "History":
        """Build from interactions with ``uidx``, ``iidx`` and optionally ``timestamp``/``row``.

        Args:
            df: the interactions (one row each; duplicates count once in ``matrix``).
            n_users: number of users (matrix rows).
            n_items: number of items (matrix columns).
        """
        df = df.copy()
        if "timestamp" not in df:
            df["timestamp"] = np.arange(len(df), dtype=float)
        if "row" not in df:
            df["row"] = np.arange(len(df))
        df = df.sort_values(["uidx", "timestamp", "row"], kind="stable")
        u = df["uidx"].to_numpy(np.int64)
        i = df["iidx"].to_numpy(np.int64)
        m = sp.csr_matrix((np.ones(len(df), np.float32), (u, i)), shape=(n_users, n_items))
        m.data[:] = 1.0  # duplicates count once
        bounds = np.searchsorted(u, np.arange(n_users + 1))
        seqs = [i[bounds[k]:bounds[k + 1]] for k in range(n_users)]
        ts = df["timestamp"].to_numpy(float)
        last = np.full(n_users, np.nan)
        has = bounds[1:] > bounds[:-1]
        last[has] = ts[bounds[1:][has] - 1]
        return cls(m, seqs, last, df[["uidx", "iidx", "timestamp", "row"]].reset_index(drop=True))

    @classmethod
    def concat(cls, *frames: pd.DataFrame, n_users: int, n_items: int) -> "History":
        return cls.from_frame(pd.concat(frames, ignore_index=True), n_users, n_items)

    def for_users(self, users: np.ndarray) -> sp.csr_matrix:
        return self.matrix[np.asarray(users)]


def as_history(data: Any, n_users: int | None = None, n_items: int | None = None) -> History:
    """A ``History`` from a ``History``, a ``Split`` (its train part) or a DataFrame."""
    if isinstance(data, History):
        return data
    if hasattr(data, "train") and hasattr(data, "n_items"):
        return History.from_frame(data.train, data.n_users, data.n_items)
    if isinstance(data, pd.DataFrame):
        if n_users is None or n_items is None:
            n_users = int(data["uidx"].max()) + 1 if n_users is None else n_users
            n_items = int(data["iidx"].max()) + 1 if n_items is None else n_items
        return History.from_frame(data, n_users, n_items)
    raise TypeError(f"cannot build a History from {type(data).__name__}")


class Recommender:
    """Base class: subclasses implement ``_fit`` and ``score``; the base does the rest.

    ``fit(data, valid=None)``: ``data`` is a ``Split`` (train part is used, valid for early
    stopping), a ``History`` or an interactions DataFrame. ``score(users, history=None)``:
    dense scores; ``history`` (default: the training data) is the user history folded in by
    models that can (item-item models, sequential, content), so eval can score the test split
    with train+valid histories without refitting.
    """

    name: ClassVar[str] = "base"
    params: dict

    def __init__(self, **params: Any):
        self.params = dict(params)
        self.train_: History | None = None
        self.info: dict[str, Any] = {}

    # -- contract ---------------------------------------------------------------------
    def fit(self, data: Any, valid: Any = None, **kw: Any) -> "Recommender":
        """Fit on ``data``; ``valid`` (DataFrame/History of held-out items) enables early stopping.

        Args:
            data: a ``Split`` (uses ``train``; ``valid`` too unless given), ``History`` or DataFrame.
            valid: held-out interactions for early stopping (optional).
        """
        if valid is None and hasattr(data, "valid") and hasattr(data, "n_items"):
            valid = data.valid
        self.train_ = as_history(data)
        self._fit(self.train_, valid, **kw)
        return self

    def _fit(self, train: History, valid: Any, **kw: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, users: np.ndarray, history: History | None = None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def recommend(self, users, k: int = 10, exclude_seen: bool = True, history: History | None = None,
                  items: np.ndarray | None = None, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and scores for each user, batched.

        Args:
            users: one user index or an array of them.
            k: list length (capped at the number of rankable items).
            exclude_seen: mask the items in ``history`` (default: training data).
            history: the histories to fold in and to mask.
            items: optional universe of rankable item indices (others are never returned).
        """
        single = np.isscalar(users)
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        hist = history or self._require_fit()
        ids_out, sc_out = [], []
        for s in range(0, len(users), batch_size):
            ub = users[s:s + batch_size]
            scores = self.score(ub, hist).astype(np.float32, copy=True)
            mask_scores(scores, hist.for_users(ub) if exclude_seen else None, items)
            ids, sc = topk(scores, k)
            ids_out.append(ids)
            sc_out.append(sc)
        ids, sc = np.concatenate(ids_out), np.concatenate(sc_out)
        return (ids[0], sc[0]) if single else (ids, sc)

    # -- persistence ------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` (name, params, info) and the arrays of ``_state()``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "model.json").write_text(json.dumps({"name": self.name, "params": self.params, "info": self.info},
                                                 indent=2, default=_jsonable), encoding="utf-8")
        state = self._state()
        if self.train_ is not None:
            f = self.train_.frame
            state.update(_uidx=f["uidx"].to_numpy(), _iidx=f["iidx"].to_numpy(),
                         _ts=f["timestamp"].to_numpy(float), _row=f["row"].to_numpy(),
                         _shape=np.array([self.train_.n_users, self.train_.n_items]))
        np.savez_compressed(d / "state.npz", **state)
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "Recommender":
        """Load a model saved by ``save`` (the class is looked up from ``model.json``)."""
        from recagent.ranking.registry import model_class

        d = Path(directory)
        if not (d / "model.json").is_file():
            raise ConfigError(f"{d}: no saved model (model.json missing); run `recagent eval` first to train one.")
        meta = json.loads((d / "model.json").read_text(encoding="utf-8"))
        klass = model_class(meta["name"]) if cls is Recommender else cls
        model = klass(**meta["params"])
        model.info = meta.get("info", {})
        with np.load(d / "state.npz", allow_pickle=False) as z:
            state = {k: z[k] for k in z.files}
        if "_shape" in state:
            n_u, n_i = (int(x) for x in state.pop("_shape"))
            frame = pd.DataFrame({"uidx": state.pop("_uidx"), "iidx": state.pop("_iidx"),
                                  "timestamp": state.pop("_ts"), "row": state.pop("_row")})
            model.train_ = History.from_frame(frame, n_u, n_i)
        model._load_state(state, d)
        return model

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_state(self, state: dict[str, np.ndarray], directory: Path) -> None:
        pass

    def _require_fit(self) -> History:
        if self.train_ is None:
            raise ConfigError(f"{self.name}: the model is not fitted; call fit() or load() first.")
        return self.train_


def mask_scores(scores: np.ndarray, seen: sp.csr_matrix | None, items: np.ndarray | None) -> np.ndarray:
    """In place: -inf for seen items (CSR rows aligned with ``scores``) and items outside ``items``."""
    if seen is not None and seen.nnz:
        rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
        scores[rows, seen.indices] = -np.inf
    if items is not None:
        keep = np.zeros(scores.shape[1], bool)
        keep[np.asarray(items)] = True
        scores[:, ~keep] = -np.inf
    return scores


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def valid_ndcg(model: "Recommender", valid: Any, k: int = 10, items: np.ndarray | None = None,
               history: History | None = None, max_users: int | None = None) -> float:
    """Mean NDCG@k on held-out interactions ``valid`` (DataFrame with uidx/iidx), ranking all
    items (or ``items``) with the training history masked. Used for early stopping and tuning.

    Args:
        model: a fitted recommender.
        valid: the held-out interactions.
        k: cut-off.
        items: optional item universe.
        history: histories to fold in / mask (default: the model's training data).
        max_users: evaluate a fixed subset of users (the first ones) to save time.
    """
    hist = history or model._require_fit()
    v = valid if isinstance(valid, pd.DataFrame) else valid.frame
    users = np.unique(v["uidx"].to_numpy())
    if max_users:
        users = users[:max_users]
    rel = relevance(v, hist.n_users, hist.n_items)
    total, n = 0.0, 0
    for s in range(0, len(users), 1024):
        ub = users[s:s + 1024]
        sc = model.score(ub, hist).astype(np.float32, copy=True)
        mask_scores(sc, hist.for_users(ub), items)
        total += ndcg_from_scores(sc, rel[ub], k) * len(ub)
        n += len(ub)
    return total / max(n, 1)


class ItemItemRecommender(Recommender):
    """A model that scores ``history @ M`` with one item-item matrix ``M``, dense or sparse
    (EASE, DLAE, SLIM, RP3beta, ItemKNN). Subclasses name the matrix attribute in ``matrix``
    (also its key in the saved state) and set it in ``_fit``; scoring and save/load are here."""

    matrix: ClassVar[str] = "W"

    def score(self, users: np.ndarray, history: History | None = None) -> np.ndarray:
        h = (history or self._require_fit()).for_users(np.atleast_1d(users))
        out = h @ getattr(self, self.matrix)
        return np.asarray(out.todense() if sp.issparse(out) else out, dtype=np.float32)

    def _state(self) -> dict:
        m = getattr(self, self.matrix)
        return sparse_state(self.matrix, m) if sp.issparse(m) else {self.matrix: m}

    def _load_state(self, state: dict, directory: Path) -> None:
        name = self.matrix
        setattr(self, name, sparse_from_state(name, state) if f"{name}_data" in state else state[name])


def sparse_state(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    """The arrays of a CSR matrix, for ``Recommender._state``."""
    m = m.tocsr()
    return {f"{prefix}_data": m.data, f"{prefix}_indices": m.indices, f"{prefix}_indptr": m.indptr,
            f"{prefix}_shape": np.array(m.shape)}


def sparse_from_state(prefix: str, state: dict[str, np.ndarray]) -> sp.csr_matrix:
    """Inverse of ``sparse_state``."""
    return sp.csr_matrix((state[f"{prefix}_data"], state[f"{prefix}_indices"], state[f"{prefix}_indptr"]),
                         shape=tuple(int(x) for x in state[f"{prefix}_shape"]))
