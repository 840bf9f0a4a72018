"""`recagent finetune clip`'s training flags reach ClipTrainConfig (no training: the stage is
replaced by a recorder)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from recagent.cli import cli


@pytest.fixture
def recorded(monkeypatch):
    import recagent.finetune.clip_train as ct

    seen = {}

    def fake_train(cfg, dataset, tcfg, **kw):
        seen["tcfg"], seen["kw"] = tcfg, kw
        return {"dataset": dataset, "checkpoint": "x/clip.pt", "step": 0, "pairs": 0, "loss_first": 0.0, "loss_last": 0.0,
                "seconds": 0.0, "pairs_per_second": 0.0}

    monkeypatch.setattr(ct, "train_catalog_clip", fake_train)
    return seen


def test_prefix_p_and_center_text_flags_reach_the_config(recorded):
    res = CliRunner().invoke(cli, ["finetune", "clip", "--dataset", "fashion-mnist-2k", "--prefix-p", "0.5", "--center-text",
                                   "--epochs", "2", "--json", "-q"])
    assert res.exit_code == 0, res.output
    t = recorded["tcfg"]
    assert (t.prefix_p, t.center_text, t.epochs) == (0.5, True, 2.0)
    assert json.loads(res.output)["checkpoint"] == "x/clip.pt"


def test_without_the_flags_the_defaults_stay(recorded):
    from recagent.finetune.clip_train import ClipTrainConfig

    res = CliRunner().invoke(cli, ["finetune", "clip", "--dataset", "fashion-mnist-2k", "--json", "-q"])
    assert res.exit_code == 0, res.output
    assert recorded["tcfg"] == ClipTrainConfig()
    res = CliRunner().invoke(cli, ["finetune", "clip", "--dataset", "fashion-mnist-2k", "--no-center-text", "--json", "-q"])
    assert res.exit_code == 0 and recorded["tcfg"].center_text is False


def test_prefix_p_outside_0_1_is_a_usage_error(recorded):
    res = CliRunner().invoke(cli, ["finetune", "clip", "--dataset", "fashion-mnist-2k", "--prefix-p", "1.5"])
    assert res.exit_code == 2 and "--prefix-p" in res.output
    assert "tcfg" not in recorded


def test_help_explains_the_flags():
    res = CliRunner().invoke(cli, ["finetune", "clip", "--help"])
    assert res.exit_code == 0
    assert "--prefix-p" in res.output and "--center-text" in res.output and "hub pictures" in res.output
