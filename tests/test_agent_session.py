"""Session state: the one 'liked items' helper and the one constraint-and-exclusion mask."""

from __future__ import annotations

import numpy as np

from recagent.agent.session import Constraints, SessionState, allowed, user_history


def test_user_history_liked_rows_follow_the_rating_threshold(tiny):
    idx = tiny.item_index
    h = user_history(tiny, SessionState(user_id="u0", likes=["i8"]), like_threshold=4.0)
    # u0 rated i1, i2, i7 with 5 and i5 with 2 (tests/conftest.py)
    assert h.rows == [idx["i1"], idx["i2"], idx["i7"], idx["i5"], idx["i8"]]
    assert h.liked_in_log == [idx["i1"], idx["i2"], idx["i7"]]
    assert h.liked == h.liked_in_log + [idx["i8"]]
    assert h.user == tiny.user_index["u0"]


def test_user_history_of_a_new_user_is_the_conversation(tiny):
    h = user_history(tiny, SessionState(likes=["i3", "nope"]))
    assert h.rows == h.liked == [tiny.item_index["i3"]] and h.liked_in_log == [] and h.user is None


def test_user_history_without_ratings_counts_every_interaction(tiny):
    tiny.interactions.df["rating"] = np.nan
    h = user_history(tiny, SessionState(user_id="u0"))
    assert len(h.liked_in_log) == 4


def test_allowed_applies_constraints_and_exclusions(tiny):
    idx = tiny.item_index
    ok = allowed(tiny.catalog, Constraints(include=["Sci-Fi"], year_max=1990), {idx["i1"]})
    assert [tiny.item_ids[i] for i in np.flatnonzero(ok)] == ["i2"]
