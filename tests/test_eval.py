"""Eval runner, report and CLI on the tiny data set (fast: hash encoder, small models)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from recagent.cli import cli
from recagent.eval.runner import parse_models, run_eval
from recagent.retrieval.encoders import HashEncoder


@pytest.fixture
def fast_cfg(cfg, tmp_path):
    return (cfg.replace("ranking", ease_grid=[1.0, 10.0], itemknn_grid=[5], bpr_epochs=5, epochs=2, fusion_epochs=3, fusion_members=2,
                        sasrec_dim=8, sasrec_max_len=5)
               .replace("eval", bootstrap=50)
               .replace("paths", runs_dir=str(tmp_path / "runs"), cache_dir=str(tmp_path / "cache")))


def test_run_eval_all_models_and_report(tiny, fast_cfg, tmp_path):
    from recagent.eval.report import write_report

    from recagent.ranking.registry import ALL_MODEL_NAMES

    assert parse_models("all") == list(ALL_MODEL_NAMES)
    models = ["pop", "itemknn", "ease", "bpr", "sasrec", "content", "rp3beta", "fusion"]
    r = run_eval(fast_cfg, tiny, "B", models, tmp_path / "run", encoder=HashEncoder(16),
                 channels=["ease", "itemknn", "bpr", "sasrec", "rp3beta"])
    assert set(r.results) == set(models)
    for res in r.results.values():
        assert 0.0 <= res["ndcg@10"] <= 1.0 and 0.0 <= res["recall@20"] <= 1.0
    assert r.best_baseline in r.results and r.best_baseline != "fusion"
    assert "fusion" in r.ci and r.ci["fusion"]["ndcg@10"]["low"] <= r.ci["fusion"]["ndcg@10"]["high"]
    assert "all" in r.ablations and "only ease" in r.ablations and "all - ease" in r.ablations
    assert (tmp_path / "run" / "models" / "B" / "fusion" / "net.pt").is_file()
    assert (tmp_path / "run" / "models" / "B" / "fusion" / "data.json").is_file()
    assert (tmp_path / "run" / "models" / "B" / "fusion" / "config.toml").is_file()
    d = write_report(r, tmp_path / "rep")
    md = (d / "report.md").read_text()
    assert "measured elsewhere" in md and "0.1005" in md          # peer numbers of Protocol B, labelled
    assert (d / "metrics_at_k.png").stat().st_size > 1000 and (d / "ablations.png").is_file()
    assert json.loads((d / "results.json").read_text())["protocol"] == "B"


def test_every_test_user_is_evaluated_and_users_without_test_items_are_not(tiny, fast_cfg, tmp_path):
    from recagent.data import make_split

    r = run_eval(fast_cfg, tiny, "A", ["pop", "ease"], tmp_path / "run")
    split = make_split(tiny, "A", fast_cfg.data)
    assert len(r.per_user["ease"]["ndcg@10"]) == len(split.users) == split.test["uidx"].nunique()


def test_unknown_model_name_is_a_config_error():
    from recagent.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown model"):
        parse_models("ease,magic")


def test_cli_eval_json_split_and_recommendations(tiny_files, fast_cfg, tmp_path):
    runs = fast_cfg.paths.runs
    common = ["--set", f"paths.runs_dir={runs}", "--set", f"paths.cache_dir={fast_cfg.paths.cache}",
              "--set", f"data.items={tiny_files['items']}", "--set", f"data.interactions={tiny_files['interactions']}",
              "--set", "ranking.ease_grid=[1.0]"]
    res = CliRunner().invoke(cli, ["eval", "--dataset", "custom", "--protocol", "B", "--models", "pop,ease", "--json",
                                   "--save-split", str(tmp_path / "split"), "--save-recommendations",
                                   str(tmp_path / "recs.jsonl")] + common)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["protocol"] == "B" and set(out["results"]) == {"pop", "ease"}
    assert "ndcg@10" in out["results"]["ease"] and "recall@10" in out["results"]["ease"]
    lines = [json.loads(x) for x in (tmp_path / "recs.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(x["user_id"].startswith("u") for x in lines)
    assert all(i.startswith("i") for x in lines for i in x["items"])
    assert (tmp_path / "split" / "train.csv").read_text().startswith("user_id,item_id")
    res = CliRunner().invoke(cli, ["recommend", "--dataset", "custom", "--user", "u0", "--k", "2", "--json"] + common)
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output.strip().splitlines()[-1])
    assert len(rec["items"]) == 2 and not {"i1", "i2", "i7", "i5"} & {x["item_id"] for x in rec["items"]}
