"""End to end with the real default LLM (SmolLM2-135M) and text encoder on ML-100K user 196,
and the terminal chat command. Slow tier: `-m model`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.model


def test_real_llm_end_to_end_known_user(cfg, ml100k):
    from recagent.agent.service import build_agent, explain_for_user
    from recagent.agent.verify import strip_unknown_titles

    c = cfg.replace("agent", explain_max_new_tokens=24, profile_max_new_tokens=30, k=3)
    agent = build_agent(c, ml100k)
    s = agent.new_session("196")
    assert s.profile["prose"] and s.profile["liked_categories"]
    r = agent.respond(s, "something funny from the 90s, no horror")
    assert len(r.items) == 3
    history = set(agent.history_rows(s))
    for it in r.items:
        row = ml100k.catalog.row(ml100k.item_index[it.item_id])
        assert "Comedy" in row["categories"] and "Horror" not in row["categories"] and 1990 <= row["year"] <= 1999
        assert it.reason and it.reason_source in ("llm", "llm-retry", "template")
        allowed = history | {ml100k.item_index[i.item_id] for i in r.items}
        assert agent.verifier.unknown_quoted(it.reason) == []             # no invented (quoted) titles
        assert set(agent.verifier.named_items(it.reason)) <= allowed      # only the items and the user's history
        assert strip_unknown_titles(it.reason, agent.verifier, allowed) == " ".join(it.reason.split())
    # the LLM really wrote something: not every reason may fall back to a template
    assert any(it.reason_source in ("llm", "llm-retry") for it in r.items), [it.reason_source for it in r.items]
    out = explain_for_user(c, ml100k, "196", [r.items[0].item_id], agent=agent)
    assert out[0]["item_id"] == r.items[0].item_id and out[0]["reason"]


def test_chat_cli_json_turns(cfg):
    from recagent.cli import cli

    res = CliRunner().invoke(cli, ["chat", "--cli", "--dataset", "ml-100k", "--json", "--no-llm", "-q",
                                   "--set", f"paths.cache_dir={cfg.paths.cache}"],
                             input="funny sci-fi from the 80s\nnot #2\n")
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    assert len(lines) == 2 and all(set(d) == {"reply", "items", "profile"} for d in lines)
    assert len(lines[0]["items"]) == 5 and lines[0]["items"][1]["item_id"] not in [i["item_id"] for i in lines[1]["items"]]
