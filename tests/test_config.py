"""Config: defaults with help, TOML loading, --set overrides, did-you-mean, saved config."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from recagent.config import default_config, load_config
from recagent.errors import ConfigError


def test_every_default_has_a_help_text():
    cfg = default_config()
    for name, sec in cfg.sections.items():
        for f in dataclasses.fields(sec):
            assert f.metadata.get("help"), f"{name}.{f.name} has no help text"


def test_toml_file_then_overrides(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[data]\npositive_threshold = 3\nsplit_ratios = [0.7, 0.2, 0.1]\n[models]\ndevice = "auto"\n')
    cfg = load_config(p, ["data.positive_threshold=4.5", "models.llm=org/some-model"])
    assert cfg.data.positive_threshold == 4.5
    assert isinstance(cfg.data.positive_threshold, float)
    assert cfg.data.split_ratios == [0.7, 0.2, 0.1]
    assert cfg.models.device == "auto"
    assert cfg.models.llm == "org/some-model"


def test_int_given_for_float_is_coerced_and_bool_parsed():
    cfg = load_config(overrides=["data.rating_max=10"])
    assert cfg.data.rating_max == 10.0 and isinstance(cfg.data.rating_max, float)


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="Did you mean 'positive_threshold'"):
        load_config(overrides=["data.positive_treshold=3"])


def test_unknown_section_suggests_the_closest():
    with pytest.raises(ConfigError, match="Did you mean 'retrieval'"):
        load_config(overrides=["retreival.batch_size=3"])


def test_wrong_type_names_key_and_default():
    with pytest.raises(ConfigError, match=r"data\.split_seed: expected int, got 'abc'; default is 2020"):
        load_config(overrides=["data.split_seed=abc"])


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(overrides=["positive_threshold=3"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(overrides=["data.positive_threshold=3.5", "ui.port=9999"])
    path = cfg.save(tmp_path / "run" / "config.toml")
    assert tomllib.loads(path.read_text())["ui"]["port"] == 9999
    again = load_config(path)
    assert again.to_dict() == cfg.to_dict()


def test_env_vars_move_cache_and_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("RECAGENT_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("RECAGENT_RUNS_DIR", str(tmp_path / "r"))
    cfg = default_config()
    assert cfg.paths.cache == tmp_path / "c"
    assert cfg.paths.runs == tmp_path / "r"
    assert load_config(overrides=[f"paths.cache_dir={tmp_path / 'x'}"]).paths.cache == tmp_path / "x"


def test_record_run_writes_resolved_config_beside_outputs(tmp_path):
    import json as _json

    from recagent.runs import record_run, run_dir

    cfg = load_config(overrides=[f"paths.runs_dir={tmp_path}", "ranking.seed=7"])
    d = run_dir(cfg, "ml-100k", "eval")
    assert d == tmp_path / "ml-100k" / "eval" and d.is_dir()
    record_run(cfg, d, "eval", {"protocol": "A"})
    assert load_config(d / "config.toml").ranking.seed == 7
    assert _json.loads((d / "run.json").read_text())["protocol"] == "A"
