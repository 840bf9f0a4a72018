"""The `CandidateRanker` contract, one mixin run against every chat ranker (SimpleRanker and
the FusionCandidateRanker on a real Chroma index): at most k, best first, constraints and
exclusions always hold, and each candidate's per-channel shares add up to its score."""

from __future__ import annotations

import pytest

from recagent.agent.ranker import CandidateRanker, SimpleRanker
from recagent.agent.session import Constraints, SessionState
from recagent.retrieval import HashEncoder

CASES = [
    (SessionState(), "haunted ghost horror"),
    (SessionState(), ""),
    (SessionState(user_id="u0"), ""),
    (SessionState(user_id="u1", likes=["i1"]), "robots in space"),
]


class CandidateRankerContract:
    """Subclasses provide a ``ranker`` fixture (over the ``tiny`` data set)."""

    # whether rank() scores are exactly the sum of the candidates' parts (SimpleRanker subtracts
    # a dislike penalty that is not a channel, so states with dislikes are left out here)
    parts_sum_to_score = True

    def test_is_a_candidate_ranker(self, ranker):
        assert isinstance(ranker, CandidateRanker)

    @pytest.mark.parametrize("case", range(len(CASES)))
    def test_at_most_k_best_first_unique(self, ranker, tiny, case):
        state, query = CASES[case]
        for k in (1, 3, 20):
            out = ranker.rank(state, query, k, set(), Constraints())
            assert 0 < len(out) <= min(k, tiny.n_items)
            assert len({c.item_idx for c in out}) == len(out)
            assert [c.score for c in out] == sorted((c.score for c in out), reverse=True)

    @pytest.mark.parametrize("case", range(len(CASES)))
    def test_constraints_and_exclusions_always_hold(self, ranker, tiny, case):
        state, query = CASES[case]
        idx = tiny.item_index
        for cons, excl in [(Constraints(exclude=["Horror"]), {idx["i1"]}),
                           (Constraints(include=["Romance"], year_min=1996), set()),
                           (Constraints(exclude_words=["robots"]), {idx["i8"]}),
                           (Constraints(include=["Western"]), set())]:
            ok = cons.mask(tiny.catalog)
            out = ranker.rank(state, query, 8, excl, cons)
            assert all(ok[c.item_idx] and c.item_idx not in excl for c in out)
            assert len(out) == min(8, int(ok.sum()) - len(excl & set(map(int, ok.nonzero()[0]))))

    @pytest.mark.parametrize("case", range(len(CASES)))
    def test_parts_add_up_to_the_score(self, ranker, case):
        state, query = CASES[case]
        for c in ranker.rank(state, query, 5, set(), Constraints()):
            assert c.parts, c
            if self.parts_sum_to_score:
                assert sum(c.parts.values()) == pytest.approx(c.score, abs=1e-3)


class TestSimpleRanker(CandidateRankerContract):
    @pytest.fixture
    def ranker(self, tiny):
        return SimpleRanker(tiny, encoder=HashEncoder(dim=64))


class TestFusionCandidateRanker(CandidateRankerContract):
    @pytest.fixture
    def ranker(self, tiny, tmp_path):
        from test_agent_fusion_ranker import tiny_fusion_ranker

        return tiny_fusion_ranker(tiny, tmp_path)
