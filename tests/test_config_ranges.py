"""Issue 9 defect 7: every config value is checked for type and range where the config is
loaded (TOML files, --set, Config.replace), with one line naming the key, the rule and the default."""

from __future__ import annotations

import dataclasses

import pytest

from recagent.config import default_config, load_config
from recagent.errors import ConfigError


def error_of(*overrides: str, names_default: bool = True) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=list(overrides))
    msg = str(exc.value)
    assert "\n" not in msg and ("default is" in msg or not names_default), msg
    return msg


@pytest.mark.parametrize("override, expected", [
    ("eval.ks=[-5,0,10]", "--set eval.ks=[-5,0,10]: eval.ks: item 1 must be >= 1, got -5; default is [5, 10, 20]."),
    ("eval.ks=['x']", "--set eval.ks=['x']: eval.ks: item 1 must be an int, got 'x'; default is [5, 10, 20]."),
    ("eval.ks=[]", "--set eval.ks=[]: eval.ks: needs at least 1 value, got 0; default is [5, 10, 20]."),
    ("eval.bootstrap=-1", "--set eval.bootstrap=-1: eval.bootstrap: must be >= 1, got -1; default is 1000."),
    ("retrieval.batch_size=0", "--set retrieval.batch_size=0: retrieval.batch_size: must be >= 1, got 0; default is 64."),
    ("agent.k=0", "--set agent.k=0: agent.k: must be >= 1, got 0; default is 5."),
    ("agent.k=-2", "--set agent.k=-2: agent.k: must be >= 1, got -2; default is 5."),
    ("data.split_ratios=['a','b','c']",
     "--set data.split_ratios=['a','b','c']: data.split_ratios: item 1 must be a float, got 'a'; default is [0.8, 0.1, 0.1]."),
])
def test_issue_examples_are_one_line_errors(override, expected):
    assert error_of(override) == expected


@pytest.mark.parametrize("ratios", ["[0.8,0.1]", "[0.8,0.1,0.9]", "[0,0,0]", "[0.5,0.5,0]", "[0,0.5,0.5]", "[1.2,-0.1,-0.1]",
                                    "[nan,0.1,0.1]"])
def test_split_ratios_must_be_three_shares_that_sum_to_one(ratios):
    assert "data.split_ratios" in error_of(f"data.split_ratios={ratios}")


def test_sane_split_ratios_pass():
    assert load_config(overrides=["data.split_ratios=[0.7,0.2,0.1]"]).data.split_ratios == [0.7, 0.2, 0.1]
    assert load_config(overrides=["data.split_ratios=[0.9,0,0.1]"]).data.split_ratios == [0.9, 0.0, 0.1]


def test_unknown_device_suggests_the_closest():
    msg = error_of("models.device=cdua")
    assert "unknown device 'cdua'" in msg and "Did you mean 'cuda'?" in msg and "cpu, cuda, cuda:N, mps or auto" in msg


def test_cuda_on_a_machine_without_cuda_is_an_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    msg = error_of("models.device=cuda")
    assert msg.startswith("--set models.device=cuda: models.device: 'cuda' but torch sees no CUDA GPU") and "cpu or auto" in msg


def test_cuda_index_beyond_the_gpus_present_is_an_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert load_config(overrides=["models.device=cuda:0"]).models.device == "cuda:0"
    assert "1 CUDA GPU" in error_of("models.device=cuda:3")


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_cpu_and_auto_need_no_gpu(device):
    assert load_config(overrides=[f"models.device={device}"]).models.device == device


@pytest.mark.parametrize("device, guess", [("CPU", "cpu"), ("gpu", "cuda"), ("cuda:x", "cuda")])
def test_device_spelling_mistakes_get_a_suggestion(device, guess):
    assert f"Did you mean '{guess}'?" in error_of(f"models.device={device}")


def test_choices_get_did_you_mean():
    msg = error_of("agent.ranker=fusoin")
    assert "unknown value 'fusoin'" in msg and "Did you mean 'fusion'?" in msg and "fusion, simple, auto" in msg


@pytest.mark.parametrize("override", ["agent.temperature=nan", "agent.max_seconds=inf", "ranking.ease_grid=[100.0, inf]"])
def test_non_finite_floats_are_rejected(override):
    assert "finite" in error_of(override)


def test_toml_file_values_are_checked_too(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[agent]\nk = 0\n")
    with pytest.raises(ConfigError, match=r"c.toml: agent.k: must be >= 1, got 0; default is 5."):
        load_config(p)


def test_replace_is_checked_too():
    with pytest.raises(ConfigError, match=r"agent.k: must be >= 1"):
        default_config().replace("agent", k=0)


def test_rating_range_is_checked_after_all_overrides_in_any_order():
    cfg = load_config(overrides=["data.rating_min=5", "data.rating_max=10", "data.positive_threshold=8"])
    assert (cfg.data.rating_min, cfg.data.rating_max) == (5.0, 10.0)
    msg = error_of("data.rating_min=6", "data.rating_max=5", names_default=False)
    assert msg.startswith("--set data.rating_max=5: data.rating_min (6) must be below data.rating_max (5); set both")
    msg = error_of("data.rating_min=5", "data.rating_max=10", names_default=False)
    assert "data.positive_threshold (4) must be between data.rating_min and data.rating_max (5 to 10)" in msg


def test_encoding_and_separator_are_checked():
    assert "unknown encoding 'utf-9'" in error_of("data.encoding=utf-9")
    assert "data.category_separator" in error_of('data.category_separator=""')


def test_every_default_passes_its_own_checks():
    from recagent.config import _apply

    cfg = default_config()
    for name, sec in cfg.sections.items():
        _apply(cfg, {name: dataclasses.asdict(sec)}, source="defaults")


def test_every_numeric_field_is_constrained_or_says_why_not():
    from recagent.config import rule_of

    missing = []
    for name, sec in default_config().sections.items():
        for f in dataclasses.fields(sec):
            value = getattr(sec, f.name)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            numeric_list = isinstance(value, list) and any(isinstance(v, (int, float)) for v in value)
            if (numeric or numeric_list) and not rule_of(f).constrains():
                missing.append(f"{name}.{f.name}")
    assert not missing, f"numeric config fields without a range (add min/max or unbounded='why'): {missing}"


def test_a_custom_check_reads_like_the_others():
    from recagent.config import opt

    @dataclasses.dataclass(frozen=True)
    class Demo:
        even: int = opt(2, "an even number", min=0, check=lambda v: None if v % 2 == 0 else f"{v} is odd; give an even number")

    f = {x.name: x for x in dataclasses.fields(Demo)}["even"]
    from recagent.config import _coerce

    assert _coerce(4, f, "t: demo.even") == 4
    with pytest.raises(ConfigError, match=r"^t: demo.even: 3 is odd; give an even number; default is 2.$"):
        _coerce(3, f, "t: demo.even")
    with pytest.raises(ConfigError, match=r"^t: demo.even: must be >= 0, got -2; default is 2.$"):
        _coerce(-2, f, "t: demo.even")


def test_config_show_prints_each_fields_limits_after_its_help():
    text = default_config().to_toml()
    assert "# items recommended per turn [>= 1]\nk = 5" in text
    assert "[3 values, each >= 0 and <= 1]\nsplit_ratios = [0.8, 0.1, 0.1]" in text
    assert "[one of fusion, simple, auto]\nranker = " in text


def test_cli_range_error_is_one_line_with_exit_2(capsys):
    from recagent.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["config", "show", "--set", "eval.ks=[-5,0,10]"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert err.strip() == "error: --set eval.ks=[-5,0,10]: eval.ks: item 1 must be >= 1, got -5; default is [5, 10, 20]."
