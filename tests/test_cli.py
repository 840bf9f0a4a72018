"""The CLI as a user meets it: help, JSON output, one-line errors with exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "recagent", *args], capture_output=True, text=True, timeout=120, env=env)


def test_help_is_a_getting_started_guide():
    p = cli("--help")
    assert p.returncode == 0
    for needle in ("recagent data pull ml-100k", "recagent models pull", "--set section.key=value", "Commands:", "data", "models", "config"):
        assert needle in p.stdout


def test_data_info_json_counts(cfg):
    p = cli("data", "info", "ml-100k", "--json", "--set", f"paths.cache_dir={cfg.paths.cache}")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert {k: d[k] for k in ("users", "items", "interactions")} == {"users": 943, "items": 1682, "interactions": 100000}


def test_data_info_splits_human_output(cfg):
    p = cli("data", "info", "ml-100k", "--splits", "--set", f"paths.cache_dir={cfg.paths.cache}")
    assert p.returncode == 0, p.stderr
    assert "protocol A: train 45,063 / valid 5,156 / test 5,156" in p.stdout


def test_data_pull_is_a_no_op_when_cached(cfg):
    p = cli("data", "pull", "ml-100k", "--json", "--set", f"paths.cache_dir={cfg.paths.cache}")
    assert p.returncode == 0 and "downloading" not in p.stderr
    assert json.loads(p.stdout)["path"].endswith("datasets/ml-100k")


def test_config_show_is_valid_commented_toml_reflecting_overrides():
    p = cli("config", "show", "--set", "ui.port=9000")
    assert p.returncode == 0
    assert "# port of the chat server" in p.stdout
    assert tomllib.loads(p.stdout)["ui"]["port"] == 9000


def test_bad_set_key_is_one_line_with_exit_2():
    p = cli("config", "show", "--set", "data.positive_treshold=3")
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0
    assert p.stderr.startswith("error: --set data.positive_treshold=3: unknown key") and "Did you mean 'positive_threshold'" in p.stderr


def test_unknown_dataset_is_one_line(cfg):
    p = cli("data", "info", "ml-1m", "--set", f"paths.cache_dir={cfg.paths.cache}")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "unknown data set 'ml-1m'" in p.stderr


def test_recommend_explain_gives_items_with_grounded_reasons(cfg, tmp_path):
    p = cli("recommend", "--user", "42", "--k", "3", "--model", "ease", "--explain", "--json",
            "--set", f"paths.cache_dir={cfg.paths.cache}", "--set", f"paths.runs_dir={tmp_path}",
            "--set", "agent.explain_with_llm=false")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["user_id"] == "42" and len(d["items"]) == 3
    from recagent.data import load_dataset

    ds = load_dataset(cfg, "ml-100k")
    seen = set(ds.history("42")["item_id"])
    for it in d["items"]:
        assert it["item_id"] in ds.item_index and it["item_id"] not in seen
        assert it["title"] == ds.catalog.title(it["item_id"])
        item = ds.catalog.get(it["item_id"])
        # grounded: names the item's year or one of its genres, and quotes only this user's titles
        assert it["reason"] and (str(item["year"]) in it["reason"] or any(c in it["reason"] for c in item["categories"]))
        history_titles = {ds.catalog.title(i) for i in seen}
        assert set(re.findall(r'"([^"]+)"', it["reason"])) <= history_titles, it["reason"]
