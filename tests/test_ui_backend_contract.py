"""The `ChatBackend` contract, one mixin run against the real `AgentBackend` (the agent with
template reasons on the tiny catalog) and the tests' `FakeBackend`: states are never mutated and
stay JSON, replies stream and end with one final update, constraints and seen items hold,
feedback and constraint removal work, bad input is a one-line `RecagentError`."""

from __future__ import annotations

import copy
import json

import pytest
from fakes import FakeBackend

from recagent.errors import RecagentError
from recagent.ui.backend import ChatBackend, TurnUpdate

HORROR = {"i5", "i6"}
U0_HISTORY = {"i1", "i2", "i7", "i5"}   # tests/conftest.py


def final(updates: list[TurnUpdate]) -> TurnUpdate:
    assert updates and updates[-1].done and all(not u.done for u in updates[:-1])
    return updates[-1]


def cards(updates: list[TurnUpdate]) -> list:
    """The cards on screen after a turn (an update's ``cards=None`` leaves them as they were)."""
    shown = [u.cards for u in updates if u.cards is not None]
    assert shown, "a turn shows cards"
    return shown[-1]


class ChatBackendContract:
    """Subclasses provide a ``backend`` fixture over the ``tiny`` data set, 3 cards a reply."""

    def test_is_a_chat_backend_with_users_and_examples(self, backend):
        assert isinstance(backend, ChatBackend)
        assert "u0" in [u for u, _ in backend.users()]
        assert backend.examples() and all(isinstance(e, str) for e in backend.examples())

    def test_unknown_user_is_a_one_line_error(self, backend):
        with pytest.raises(RecagentError):
            backend.new_session("nobody")

    def test_turn_streams_and_never_mutates_the_state_it_was_given(self, backend):
        s0 = backend.new_session(None)
        before = copy.deepcopy(s0)
        ups = list(backend.respond_stream(s0, "something scary"))
        assert s0 == before
        last, shown = final(ups), cards(ups)
        assert 0 < len(shown) <= 3 and {c.item_id for c in shown} <= set(backend.catalog.ids)
        assert last.state["shown"] == [c.item_id for c in shown]
        assert json.loads(json.dumps(last.state)) == last.state

    def test_exclusions_hold(self, backend):
        shown = cards(list(backend.respond_stream(backend.new_session(None), "no horror please")))
        assert shown and not {c.item_id for c in shown} & HORROR

    def test_known_user_never_gets_seen_items(self, backend):
        shown = cards(list(backend.respond_stream(backend.new_session("u0"), "something")))
        assert shown and not {c.item_id for c in shown} & U0_HISTORY

    def test_feedback_moves_items_and_rejects_bad_input(self, backend):
        s = backend.new_session(None)
        s1 = backend.feedback(s, "i3", "like")
        assert "i3" in s1["likes"] and "i3" not in s.get("likes", [])
        s2 = backend.feedback(s1, "i3", "dislike")
        assert "i3" in s2["dislikes"] and "i3" not in s2["likes"]
        with pytest.raises(RecagentError):
            backend.feedback(s, "i3", "love")
        with pytest.raises(RecagentError):
            backend.feedback(s, "zz", "like")

    def test_a_constraint_can_be_removed(self, backend):
        s = final(list(backend.respond_stream(backend.new_session(None), "horror from the 80s"))).state
        keys = [k for k, _ in backend.profile(s).constraints]
        assert "years" in keys and "include:Horror" in keys
        s2 = backend.remove_constraint(s, "years")
        assert "years" not in [k for k, _ in backend.profile(s2).constraints]
        with pytest.raises(RecagentError):
            backend.remove_constraint(s2, "years-ish")


def test_excluded_words_are_chips_that_can_be_removed(tiny, tmp_path):
    """'no robots' excludes items that say 'robots' (agent.session); the chip shows and removes it."""
    from recagent.ui.backend import constraint_chips

    backend = agent_backend(tiny, tmp_path)
    ups = list(backend.respond_stream(backend.new_session(None), "no robots"))
    s = final(ups).state
    assert not {c.item_id for c in cards(ups)} & {"i1", "i2", "i7"}   # their texts say "robots"
    assert ("exclude_word:robots", "nothing “robots”") in constraint_chips(s["constraints"])
    s2 = backend.remove_constraint(s, "exclude_word:robots")
    assert s2["constraints"]["exclude_words"] == []


def agent_backend(tiny, tmp_path):
    """The real AgentBackend: the agent with SimpleRanker (hash encoder) and template reasons."""
    from recagent.agent.agent import Agent
    from recagent.agent.config import AgentConfig
    from recagent.agent.ranker import SimpleRanker
    from recagent.retrieval.encoders import HashEncoder
    from recagent.ui.agent_backend import AgentBackend
    from recagent.ui.media import Thumbnails

    agent = Agent(tiny, ranker=SimpleRanker(tiny, encoder=HashEncoder(dim=64)),
                  settings=AgentConfig(k=3, explain_with_llm=False, profile_with_llm=False))
    return AgentBackend(agent, tiny, thumbs=Thumbnails(tmp_path / "thumbs"))


class TestAgentBackend(ChatBackendContract):
    @pytest.fixture
    def backend(self, tiny, tmp_path):
        return agent_backend(tiny, tmp_path)


class TestFakeBackend(ChatBackendContract):
    @pytest.fixture
    def backend(self, tiny):
        return FakeBackend(tiny, k=3)
