"""UI fast tier: the backend contract (on FakeBackend), HTML rendering, bind/auth checks, and the
app's wiring (API names) without starting a server."""

from __future__ import annotations

import copy
import json

import pytest

from recagent.errors import ConfigError, RecagentError
from fakes import FakeBackend

from recagent.ui.backend import Card, ChatBackend, TurnUpdate, constraint_chips, drop_constraint
from recagent.ui.render import card_html, example_prompts, profile_html, why_html
from recagent.ui.serve import check_bind, parse_auth


@pytest.fixture
def fake(tiny):
    return FakeBackend(tiny, k=3)


def _final(updates: list[TurnUpdate]) -> TurnUpdate:
    assert updates and updates[-1].done and all(not u.done for u in updates[:-1])
    return updates[-1]


def test_fake_backend_implements_protocol(fake):
    assert isinstance(fake, ChatBackend)
    assert ("u0", "user u0 · 4 ratings") in fake.users()
    assert fake.examples()


def test_turn_streams_and_applies_constraints(fake):
    s0 = fake.new_session(None)
    before = copy.deepcopy(s0)
    ups = list(fake.respond_stream(s0, "sci-fi please, no action"))
    assert s0 == before, "respond_stream must not mutate the state it was given"
    assert len(ups) > 1 and ups[0].cards is not None
    assert all(len(b.text) >= len(a.text) for a, b in zip(ups, ups[1:])), "text grows monotonically"
    last = _final(ups)
    cards = ups[0].cards
    # Sci-Fi without Action in the tiny catalog: only i1 (Star Voyage).
    assert [c.item_id for c in cards] == ["i1"]
    assert last.state["shown"] == ["i1"]
    assert dict(fake.profile(last.state).constraints) == {"include:Sci-Fi": "Sci-Fi", "exclude:Action": "no Action"}
    json.dumps(last.state)  # JSON-serialisable


def test_known_user_history_shapes_profile_and_hides_seen(fake):
    s = fake.new_session("u0")  # liked i1, i2, i7 (sci-fi), rated i5 low
    assert "Sci-Fi" in fake.profile(s).summary
    last = _final(list(fake.respond_stream(s, "something")))
    shown = last.state["shown"]
    assert not {"i1", "i2", "i7", "i5"} & set(shown), "seen items are never recommended"
    with pytest.raises(RecagentError, match="not in data set"):
        fake.new_session("nobody")


def test_feedback_moves_items_and_changes_profile(fake):
    s = fake.new_session(None)
    s1 = fake.feedback(s, "i3", "like")
    assert s["likes"] == [] and s1["likes"] == ["i3"]
    assert "Romance" in fake.profile(s1).summary and "Love in Paris" in fake.profile(s1).likes
    s2 = fake.feedback(s1, "i3", "dislike")
    assert s2["likes"] == [] and s2["dislikes"] == ["i3"]
    with pytest.raises(RecagentError, match="use one of like, dislike, seen"):
        fake.feedback(s, "i3", "love")
    with pytest.raises(RecagentError, match="not in the catalog"):
        fake.feedback(s, "zz", "like")


def test_remove_constraint(fake):
    s = _final(list(fake.respond_stream(fake.new_session(None), "horror from the 80s"))).state
    keys = [k for k, _ in fake.profile(s).constraints]
    assert keys == ["include:Horror", "years"]
    s2 = fake.remove_constraint(s, "years")
    assert [k for k, _ in fake.profile(s2).constraints] == ["include:Horror"]
    with pytest.raises(RecagentError, match="not active"):
        fake.remove_constraint(s2, "years-ish")


def test_empty_message_is_a_user_error(fake):
    with pytest.raises(RecagentError, match="empty message"):
        list(fake.respond_stream(fake.new_session(None), "   "))


def test_constraint_chips_and_drop():
    c = {"include": ["Drama"], "exclude": ["War"], "year_min": 1990, "year_max": 1999}
    assert constraint_chips(c) == [("include:Drama", "Drama"), ("exclude:War", "no War"), ("years", "1990-1999")]
    assert constraint_chips({"year_min": 1995, "year_max": 1995}) == [("years", "1995")]
    assert constraint_chips({"year_min": None, "year_max": 1969}) == [("years", "up to 1969")]
    d = drop_constraint(c, "exclude:War")
    assert d["exclude"] == [] and c["exclude"] == ["War"]


def test_card_html_escapes_catalog_text_and_shows_text_cover():
    card = Card("x1", "<script>alert(1)</script> & Co", 1999, ["Drama"], None, "Because <b>you</b> said so").to_dict()
    out = card_html(card, 2, feedback="like")
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "&lt;b&gt;you" in out and "ra-cover" in out and "1999" in out and "liked" in out
    with_img = card_html({**card, "image_path": "/tmp/x.png"}, 1)
    assert "ra-cover" not in with_img


def test_why_html_orders_channels_by_magnitude():
    out = why_html({"scores": {"popularity": 0.1, "cf": -0.9, "text": 0.5}})
    order = [out.index(f'data-channel="{c}"') for c in ("cf", "text", "popularity")]
    assert order == sorted(order)
    assert "Collaborative filtering" in out and "-0.900" in out
    assert "No channel scores" in why_html({"scores": {}})


def test_profile_html_lists_likes_and_hint():
    out = profile_html({"summary": "Likes <noir>", "likes": ["A"], "dislikes": [], "constraints": []})
    assert "&lt;noir&gt;" in out and 'data-role="likes"' in out and "No active constraints" in out


def test_example_prompts_use_catalog_vocabulary():
    ex = example_prompts(["Drama", "Comedy", "Action", "Thriller"], ["Star Wars (1977)"])
    assert ex[0] == "Something comedy from the 90s" and any("Star Wars" in e for e in ex)
    assert example_prompts([]) == ["What should I try next?"]


@pytest.mark.parametrize("host,auth,ok", [("127.0.0.1", None, True), ("localhost", None, True),
                                          ("0.0.0.0", None, False), ("0.0.0.0", "me:pw", True)])
def test_check_bind(host, auth, ok):
    warnings: list[str] = []
    if ok:
        assert check_bind(host, 7860, auth, warn=warnings.append) == parse_auth(auth)
        assert bool(warnings) == (host == "0.0.0.0")
    else:
        with pytest.raises(ConfigError, match="--auth USER:PASS"):
            check_bind(host, 7860, auth, warn=warnings.append)


@pytest.mark.parametrize("bad", ["nopass", ":pw", "me:"])
def test_parse_auth_rejects_malformed(bad):
    with pytest.raises(ConfigError, match="USER:PASS"):
        parse_auth(bad)


def test_bad_port_is_config_error():
    with pytest.raises(ConfigError, match="1 to 65535"):
        check_bind("127.0.0.1", 70000, None)


def test_app_exposes_named_api_endpoints(fake):
    from recagent.ui.app import build_app

    demo = build_app(fake, max_cards=3)
    deps = demo.get_config_file()["dependencies"]
    public = {d["api_name"] for d in deps if d.get("api_visibility") == "public"}
    assert public == {"start", "chat", "feedback", "remove_constraint", "users"}


def test_card_without_image_gets_none_not_nan():
    """Regression: catalog rows carry NaN for a missing image, which is truthy and broke gr.Image."""
    assert Card("x", "T", image_path=float("nan")).image_path is None
    assert Card("x", "T", image_path="").image_path is None
    assert Card("x", "T", image_path="/a.png").image_path == "/a.png"
