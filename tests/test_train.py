"""The training home (ranking/train.py): saved models carry config + data fingerprint, are reused
only for the very data they were trained on (issue 9 defect 6), and every command uses one run
folder per data set."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
from click.testing import CliRunner

from ranking_data import write_recipes
from recagent.cli import cli
from recagent.data import load_dataset, load_files
from recagent.ranking.train import load_or_train, train, train_hint
from recagent.retrieval.encoders import HashEncoder
from recagent.runs import StaleRunError, layout


@pytest.fixture
def fast_cfg(cfg, tmp_path):
    return (cfg.replace("ranking", ease_grid=[1.0, 10.0], itemknn_grid=[5], bpr_epochs=5, epochs=2, fusion_epochs=3,
                        fusion_members=2, sasrec_dim=8, sasrec_max_len=5, ablations=False)
               .replace("paths", runs_dir=str(tmp_path / "runs"), cache_dir=str(tmp_path / "cache")))


def custom(cfg, folder):
    """``cfg`` pointing at the recipes files in ``folder`` (as `--dataset custom` does)."""
    items, log = write_recipes(folder) if not (folder / "items.csv").exists() else (folder / "items.csv", folder / "log.csv")
    c = cfg.replace("data", items=str(items), interactions=str(log))
    return c, load_dataset(c, "custom")


def top(model, ds, user="u3", k=5):
    from recagent.ranking.base import History

    full = History.from_frame(ds.encoded(), ds.n_users, ds.n_items)
    ids, _ = model.recommend(np.array([ds.user_index[user]]), k, history=full)
    return [ds.item_ids[i] for i in ids[0]]


def test_saved_model_has_config_and_fingerprint_and_is_reused(fast_cfg, tmp_path):
    cfg, ds = custom(fast_cfg, tmp_path / "recipes")
    t = train(cfg, ds, "B", ["ease"])
    d = layout(cfg, ds).model("B", "ease")
    assert {"model.json", "config.toml", "data.json", "run.json"} <= {p.name for p in d.iterdir()}
    assert json.loads((d / "data.json").read_text())["catalog"] == ds.catalog.fingerprint
    logs = []
    again = load_or_train(cfg, ds, "B", ["ease"], log=logs.append, allow_train=False)["ease"]
    assert not logs and top(again, ds) == top(t.models["ease"], ds)


def test_reordered_catalog_is_never_served_by_the_old_model(fast_cfg, tmp_path):
    cfg, ds = custom(fast_cfg, tmp_path / "recipes")
    train(cfg, ds, "B", ["ease"])
    items = tmp_path / "recipes" / "items.csv"
    lines = items.read_text().splitlines()
    items.write_text("\n".join([lines[0]] + lines[1:][::-1]) + "\n")       # same ids, other order
    ds2 = load_dataset(cfg, "custom")
    assert ds2.item_ids[0] != ds.item_ids[0]
    with pytest.raises(StaleRunError, match="different catalog") as e:
        load_or_train(cfg, ds2, "B", ["ease"], allow_train=False)
    assert "\n" not in str(e.value) and "recagent train --dataset custom" in str(e.value)
    logs = []
    model = load_or_train(cfg, ds2, "B", ["ease"], log=logs.append)["ease"]
    assert any("retraining" in m for m in logs)
    fresh = train(cfg, ds2, "B", ["ease"], save=False).models["ease"]
    assert top(model, ds2) == top(fresh, ds2)                            # same items, in original ids
    assert load_or_train(cfg, ds2, "B", ["ease"], allow_train=False)       # now current again


def test_custom_data_in_a_folder_named_like_a_builtin_never_loads_its_models(fast_cfg, tmp_path):
    from recagent.data.builtin import BUILTIN

    assert "ml-100k" in BUILTIN
    fake_builtin = load_files(*write_recipes(tmp_path / "elsewhere", n_items=60, seed=3), name="ml-100k", builtin=True)
    train(fast_cfg, fake_builtin, "B", ["ease"])                          # "built-in" ml-100k models in <runs>/ml-100k
    cfg, ds = custom(fast_cfg, tmp_path / "ml-100k")
    assert ds.name != "ml-100k" and layout(cfg, ds).root != layout(cfg, fake_builtin).root
    logs = []
    model = load_or_train(cfg, ds, "B", ["ease"], log=logs.append)["ease"]
    assert any("training it" in m for m in logs)                          # nothing was loaded
    assert model.train_.n_items == ds.n_items
    assert (layout(cfg, ds).model("B", "ease") / "data.json").is_file()


def test_one_run_folder_for_train_eval_recommend_and_chat(fast_cfg, tmp_path, monkeypatch):
    cfg, ds = custom(fast_cfg, tmp_path / "shop")
    opts = ["--set", f"paths.runs_dir={cfg.paths.runs}", "--set", f"paths.cache_dir={cfg.paths.cache}",
            "--set", f"data.items={cfg.data.items}", "--set", f"data.interactions={cfg.data.interactions}",
            "--set", "ranking.ease_grid=[1.0]"]
    folder = layout(cfg, ds).models("B")
    r = CliRunner().invoke(cli, ["train", "--dataset", "custom", "--models", "ease", "--json"] + opts)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["models"][0]["folder"] == str(folder / "ease")
    stamp = (folder / "ease" / "run.json").read_text()
    r = CliRunner().invoke(cli, ["recommend", "--dataset", "custom", "--user", "u1", "--model", "ease", "--no-train",
                                 "--json"] + opts)
    assert r.exit_code == 0, r.output                                      # found what train saved
    assert (folder / "ease" / "run.json").read_text() == stamp             # ... and did not retrain
    r = CliRunner().invoke(cli, ["eval", "--dataset", "custom", "--protocol", "B", "--models", "pop", "--json"] + opts)
    assert r.exit_code == 0, r.output
    assert (folder / "pop" / "data.json").is_file() and (folder / "results.json").is_file()


@pytest.mark.slow  # ~9 s: trains every fusion channel (SASRec included) on the small data
def test_chat_first_start_loads_the_fusion_model_train_saved(fast_cfg, tmp_path, monkeypatch):
    cfg, ds = custom(fast_cfg, tmp_path / "shop")
    train(cfg, ds, "B", ["fusion"], encoder=HashEncoder(16))
    from recagent.agent.fusion_ranker import FusionCandidateRanker
    from recagent.retrieval import ItemIndex

    real_open = ItemIndex.open.__func__
    monkeypatch.setattr(ItemIndex, "open", classmethod(lambda c, cfg_, name=None, **kw: real_open(
        c, cfg_, name, text_encoder=HashEncoder(16), clip_encoder=None)))
    ranker = FusionCandidateRanker.from_config(cfg, ds, train=False, log_fn=lambda m: None)
    assert ranker is not None and ranker.fusion.train_.n_items == ds.n_items


def test_recommend_takes_one_model_and_the_train_hint_works(fast_cfg, tmp_path):
    cfg, ds = custom(fast_cfg, tmp_path / "books")
    opts = ["--set", f"paths.runs_dir={cfg.paths.runs}", "--set", f"paths.cache_dir={cfg.paths.cache}",
            "--set", "ranking.ease_grid=[1.0]"]
    r = CliRunner().invoke(cli, ["recommend", "--dataset", "custom", "--user", "u1", "--model", "pop,ease"] + opts)
    assert r.exit_code != 0 and "one model" in str(r.exception) and "\n" not in str(r.exception)
    r = CliRunner().invoke(cli, ["recommend", "--dataset", "custom", "--user", "u1", "--model", "ease", "--no-train",
                                 "--set", f"data.items={cfg.data.items}", "--set",
                                 f"data.interactions={cfg.data.interactions}"] + opts)
    assert isinstance(r.exception, StaleRunError) and "recagent train" in str(r.exception)
    hint = train_hint(ds, "B", "ease")
    args = shlex.split(hint)
    assert args[:2] == ["recagent", "train"]
    r = CliRunner().invoke(cli, args[1:] + opts)                          # the hint, as a user would paste it
    assert r.exit_code == 0, r.output
    assert load_or_train(cfg, ds, "B", ["ease"], allow_train=False)


@pytest.mark.parametrize("protocol", ["A", "B"])
def test_refit_folds_never_target_what_the_channels_were_fit_on(fast_cfg, tmp_path, protocol):
    from recagent.data import make_split
    from recagent.ranking.base import History
    from recagent.ranking.train import Trained, refit_folds

    cfg, ds = custom(fast_cfg, tmp_path / "recipes")
    split = make_split(ds, protocol)
    t = Trained(protocol, split, History.from_frame(split.train, split.n_users, split.n_items))
    f = split.train.reset_index(drop=True)
    folds = refit_folds(t, 2)
    covered = set()
    for fit_rows, tgt_rows in folds:
        assert len(tgt_rows) and not set(fit_rows) & set(tgt_rows)
        covered |= set(tgt_rows)
        if protocol == "B":                          # a target comes after everything its channels saw
            last_fit = f.iloc[fit_rows].groupby("uidx")["timestamp"].max()
            tg = f.iloc[tgt_rows]
            assert (tg["timestamp"].to_numpy() >= last_fit.reindex(tg["uidx"]).to_numpy()).all()
            assert tg["uidx"].is_unique
    if protocol == "A":
        assert covered == set(range(len(f)))         # every train interaction is a target once


def test_fusion_trains_on_refit_folds_and_selects_on_valid_users_only(fast_cfg, tmp_path):
    cfg, ds = custom(fast_cfg, tmp_path / "recipes")
    t = train(cfg, ds, "A", ["fusion"], encoder=HashEncoder(16), save=False, channels=["ease", "itemknn"],
              fusion_params={"refit_folds": 2, "loss": "topn", "topn": 20})
    info = t.models["fusion"].info
    assert info["training_users"] > info["selection_users"] == t.n_select
    assert info["selection"]["served"] and "fusion_refit_folds" in t.timings


def test_fusion_seed_ensemble_is_the_protocols_default_unless_the_config_sets_it(fast_cfg, tmp_path):
    """``ranking.fusion_members`` / ``fusion_repeats`` 0 take ``FUSION_ENSEMBLE`` of the protocol
    (members x repeats nets); a value set in the config wins."""
    from recagent.ranking.train import FUSION_ENSEMBLE

    cfg, ds = custom(fast_cfg, tmp_path / "recipes")
    kw = dict(encoder=HashEncoder(16), save=False, channels=["ease"])
    t = train(cfg, ds, "A", ["fusion"], **kw)
    assert t.models["fusion"].info["members"] == 2 * FUSION_ENSEMBLE["A"]["repeats"] > 2   # fast_cfg: 2 members
    t = train(cfg.replace("ranking", fusion_repeats=1), ds, "A", ["fusion"], **kw)
    assert t.models["fusion"].info["members"] == 2
    t = train(cfg.replace("ranking", fusion_members=0, fusion_repeats=1), ds, "B", ["fusion"], **kw)
    assert t.models["fusion"].info["members"] == FUSION_ENSEMBLE["B"]["members"]
