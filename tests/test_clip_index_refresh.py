"""The index notices new CLIP weights: ``ensure_built`` records the CLIP checkpoint's fingerprint
and re-embeds the ``image`` and ``clip_text`` channels when the configured checkpoint changes
(another file, or the same file re-trained in place), leaving the ``text`` channel alone."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from recagent.config import load_config
from recagent.retrieval import HashEncoder, ItemIndex
from recagent.retrieval import integrity
from test_retrieval_clip import TINY_ARCH, TINY_CFG, _catalog, _images


def _tiny_checkpoint(path, seed: int):
    import open_clip
    import torch

    from recagent.retrieval.clip import register_model_config, save_clip_checkpoint

    register_model_config(TINY_ARCH, TINY_CFG)
    torch.manual_seed(seed)
    model, _, _ = open_clip.create_model_and_transforms(TINY_ARCH, pretrained=None)
    return save_clip_checkpoint(model, TINY_ARCH, path, model_cfg=TINY_CFG)


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return _tiny_checkpoint(d / "a.pt", seed=1), _tiny_checkpoint(d / "b.pt", seed=2)


@pytest.fixture
def catalog(tmp_path):
    paths = _images(tmp_path / "img")
    return _catalog({k: paths[k] for k in ("red", "green", "blue")})


def _open(tmp_path, checkpoint=None) -> ItemIndex:
    sets = [f"paths.runs_dir={tmp_path / 'runs'}"] + ([f"models.clip_checkpoint={checkpoint}"] if checkpoint else [])
    return ItemIndex.open(load_config(overrides=sets), "pics", text_encoder=HashEncoder(64))


def _stored(index: ItemIndex, channel: str) -> np.ndarray:
    got = index.embeddings(["c-red", "c-green", "c-blue"], channel)
    return np.stack([got[i] for i in ("c-red", "c-green", "c-blue")])


def test_a_new_checkpoint_re_embeds_the_clip_channels_only(two_checkpoints, catalog, tmp_path):
    from recagent.retrieval.clip import ClipEncoder

    a, b = two_checkpoints
    first = _open(tmp_path, a).ensure_built(catalog)
    assert first is not None and first.channels["image"]["added"] == 3
    rec = integrity.read_record(_open(tmp_path, a).folder)
    assert rec["channels"]["image"]["clip"] == rec["channels"]["clip_text"]["clip"] == ClipEncoder(checkpoint=a).fingerprint
    assert _open(tmp_path, a).ensure_built(catalog) is None  # same checkpoint: nothing to do

    index = _open(tmp_path, b)
    assert index.health(catalog).state == "stale" and "CLIP checkpoint is now b.pt#" in index.health(catalog).detail
    report = index.ensure_built(catalog)
    assert report is not None
    assert report.channels["image"]["unchanged"] == report.channels["clip_text"]["unchanged"] == 0
    assert report.channels["text"]["unchanged"] == len(catalog)
    enc_b = ClipEncoder(checkpoint=b)
    want = enc_b.embed_images([catalog.items.set_index("item_id").loc[i, "image_path"] for i in ("c-red", "c-green", "c-blue")])
    np.testing.assert_allclose(_stored(_open(tmp_path, b), "image"), want, atol=1e-4)
    assert _open(tmp_path, b).ensure_built(catalog) is None


def test_re_training_the_checkpoint_in_place_is_noticed(two_checkpoints, catalog, tmp_path):
    a, b = two_checkpoints
    ckpt = tmp_path / "clip.pt"
    shutil.copy(a, ckpt)
    _open(tmp_path, ckpt).ensure_built(catalog)
    before = _stored(_open(tmp_path, ckpt), "image")
    shutil.copy(b, ckpt)  # the same path, new weights (what `recagent finetune clip` does)
    assert _open(tmp_path, ckpt).ensure_built(catalog) is not None
    after = _stored(_open(tmp_path, ckpt), "image")
    assert not np.allclose(before, after, atol=1e-3)


def test_an_index_built_before_clip_gains_the_image_channels(two_checkpoints, catalog, tmp_path):
    a, _ = two_checkpoints
    _open(tmp_path).ensure_built(catalog)  # no CLIP configured: text channel only
    assert "image" not in integrity.read_record(_open(tmp_path).folder)["channels"]
    assert _open(tmp_path).ensure_built(catalog) is None
    index = _open(tmp_path, a)
    assert "a CLIP model is now configured" in index.health(catalog).detail
    report = index.ensure_built(catalog)
    assert report.channels["image"]["added"] == 3 and report.channels["text"]["unchanged"] == len(catalog)


def test_records_from_before_the_clip_field_are_read_from_the_encoder_name():
    rec = {"channels": {"clip_text": {"encoder": "clip:arch:a.pt#123"}, "image": {"encoder": "clip:arch:a.pt#123"}}}
    assert integrity.clip_problem(rec, "a.pt#123") is None
    assert "now b.pt#456" in integrity.clip_problem(rec, "b.pt#456")
    assert integrity.clip_problem(rec, None) is None
