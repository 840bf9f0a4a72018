"""The chat's FusionCandidateRanker on real small parts: a Chroma index of the tiny catalog
(hash encoder) and a FusionRanker fitted on the tiny log."""

from __future__ import annotations

import numpy as np
import pytest

from recagent.agent.session import Constraints, SessionState
from recagent.agent.fusion_ranker import FusionCandidateRanker
from recagent.config import load_config
from recagent.data import make_split
from recagent.ranking.base import History
from recagent.ranking.baselines import EASE
from recagent.ranking.fusion import FusionRanker
from recagent.retrieval import HashEncoder, ItemIndex


@pytest.fixture
def ranker(tiny, tmp_path):
    return tiny_fusion_ranker(tiny, tmp_path)


def tiny_fusion_ranker(tiny, tmp_path) -> FusionCandidateRanker:
    """A real Chroma index of the tiny catalog (hash encoder) and a small FusionRanker on its log."""
    cfg = load_config(overrides=[f"paths.runs_dir={tmp_path / 'runs'}"])
    enc = HashEncoder(64)
    index = ItemIndex.open(cfg, "tiny", text_encoder=enc, clip_encoder=None)
    index.build(tiny)
    split = make_split(tiny, "B")
    tr = History.from_frame(split.train, split.n_users, split.n_items)
    emb = enc.embed_texts([tiny.catalog.describe(i) for i in range(len(tiny.catalog))])
    fusion = FusionRanker(hidden=4, epochs=3, patience=1, holdout=0.34)
    fusion.fit(split, base_models={"ease": EASE(reg=1.0).fit(tr)}, text_emb=emb)
    return FusionCandidateRanker(tiny, index, fusion, per_channel=8)


def ids(ds, cands):
    return [ds.item_ids[c.item_idx] for c in cands]


def test_new_user_query_finds_matching_items_first(ranker, tiny):
    out = ranker.rank(SessionState(), "haunted ghost horror", k=3, exclude=set(), constraints=Constraints())
    assert out and ids(tiny, out)[0] in {"i5", "i6"}
    assert out[0].channel == "query"
    assert [c.score for c in out] == sorted((c.score for c in out), reverse=True)


def test_constraints_and_exclusions_always_hold(ranker, tiny):
    idx = tiny.item_index
    cons = Constraints(exclude=["Horror"])
    out = ranker.rank(SessionState(), "haunted ghost horror", k=8, exclude={idx["i7"]}, constraints=cons)
    got = ids(tiny, out)
    assert "i7" not in got and not {"i5", "i6"} & set(got)
    assert len(got) == len(set(got)) > 0


def test_known_user_history_drives_cf_candidates(ranker, tiny):
    state = SessionState(user_id="u0")          # u0 likes the sci-fi items i1, i2, i7
    seen = {tiny.item_index[i] for i in tiny.history("u0")["item_id"]}
    out = ranker.rank(state, "", k=3, exclude=seen, constraints=Constraints())
    assert out and not seen & {c.item_idx for c in out}
    assert {c.channel for c in out} <= {"neighbours", "cf"}


def test_the_agent_can_reuse_its_item_embeddings(ranker, tiny):
    assert ranker.emb.shape == (len(tiny.catalog), 64)
    assert np.allclose(np.linalg.norm(ranker.emb, axis=1), 1.0, atol=1e-4)


def test_channel_scores_add_up_to_the_fused_score(ranker, tiny):
    """The "why this?" breakdown is the fused score split by channel (plus the MLP's interplay)."""
    state = SessionState(user_id="u0")
    history, _, user = ranker._history(state)
    parts = ranker.fusion.contributions(history, user=user)
    assert set(parts) >= {"ease", "text_hist", "pop"}
    everything = np.arange(len(tiny.catalog))
    fused = ranker.fusion.rank(history, everything, user=user)
    total = np.sum(list(parts.values()), axis=0)
    assert np.allclose(total, fused, atol=1e-4)
    q = ranker.channel_scores(state, "haunted ghost horror")
    assert "query" in q and q["query"][tiny.item_index["i5"]] > q["query"][tiny.item_index["i3"]]


def test_new_users_get_no_collaborative_user_factors():
    """Regression: FusionRanker.rank(user=None) used to score a new user with user 0's BPR factors."""
    import pandas as pd

    from recagent.ranking.base import History
    from recagent.ranking.features import FeatureSources, build_features

    class Factors:
        def score(self, users):
            return np.ones((len(users), 3), np.float32)

    src = FeatureSources(models={"bpr": Factors()}, n_items=3)
    hist = History.from_frame(pd.DataFrame({"uidx": [0], "iidx": [1], "timestamp": [0.0]}), 2, 3)
    _, M = build_features(src, ["bpr"], np.array([0, 1]), hist, np.arange(3), model_users=np.array([-1, 0]))
    assert M[0, :, 0].sum() == 0 and M[1, :, 0].sum() == 3


def test_a_disliked_item_pushes_down_what_reads_like_it(ranker, tiny):
    """'I hated X': items whose text is close to X drop, with a negative 'dislike' share in the
    "why this?" breakdown; nothing changes without dislikes."""
    idx = tiny.item_index
    sims = ranker.emb @ ranker.emb[idx["i5"]]
    twin = int(np.argsort(-sims)[1])                 # the item reading most like i5
    plain = ranker.channel_scores(SessionState(), "")
    assert "dislike" not in plain
    hated = ranker.channel_scores(SessionState(dislikes=["i5"]), "")
    others = np.delete(hated["dislike"], idx["i5"])
    assert hated["dislike"][twin] < 0 and np.isclose(hated["dislike"][twin], others.min())
    before = ranker.rank(SessionState(), "", k=len(tiny.catalog), exclude={idx["i5"]}, constraints=Constraints())
    after = ranker.rank(SessionState(dislikes=["i5"]), "", k=len(tiny.catalog), exclude={idx["i5"]},
                        constraints=Constraints())
    pos = lambda cands: [c.item_idx for c in cands].index(twin)  # noqa: E731
    assert pos(after) > pos(before)
