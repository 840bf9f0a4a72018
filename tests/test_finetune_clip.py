"""CLIP training (finetune/clip_train.py): a tiny CLIP on generated pictures learns which
caption goes with which picture; checkpoints load in ClipEncoder; an interrupted run resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from recagent.finetune.clip_train import (CHECKPOINT, STATE, ClipPairs, ClipTrainConfig, ClipTrainError, pairs_from_catalog,
                                          train_clip)

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 230), "yellow": (235, 220, 30)}
SHAPES = ("square", "ring")
WORDS = ["a", "small", "picture", "of"] + list(COLOURS) + list(SHAPES)


def tiny_text_model(folder: Path) -> str:
    """A 2-layer random BERT with a 20-word vocabulary: a real HF text tower, built offline."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}).save_pretrained(folder)
    cfg = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(folder)
    return str(folder)


def picture(colour: str, shape: str, rng: np.random.Generator):
    from PIL import Image

    a = np.full((16, 16, 3), 245, np.uint8)
    c = np.array(COLOURS[colour]) * rng.uniform(0.8, 1.0)
    lo, hi = rng.integers(2, 5), rng.integers(11, 14)
    a[lo:hi, lo:hi] = c
    if shape == "ring":
        a[lo + 3:hi - 3, lo + 3:hi - 3] = 245
    return Image.fromarray(a)


def make_pairs(n: int, seed: int = 0) -> tuple[ClipPairs, list[tuple[str, str]]]:
    rng = np.random.default_rng(seed)
    kinds = [(c, s) for c in COLOURS for s in SHAPES]
    labels = [kinds[i % len(kinds)] for i in range(n)]
    return ClipPairs([picture(c, s, rng) for c, s in labels], [f"a small picture of a {c} {s}" for c, s in labels],
                     [f"p{i}" for i in range(n)]), labels


TINY = ClipTrainConfig(arch="test-clip-tiny", image_size=16, patch_size=4, width=64, layers=1, embed_dim=32,
                       context_length=12, batch_size=32, max_steps=60, lr=3e-3, warmup_steps=5, checkpoint_every=20)


@pytest.fixture(scope="module")
def text_model(tmp_path_factory) -> str:
    return tiny_text_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def trained(text_model, tmp_path_factory):
    pairs, labels = make_pairs(64)
    out = tmp_path_factory.mktemp("clip")
    res = train_clip(pairs, out, TINY, text_model=text_model, progress=False)
    return res, out, labels


def test_loss_falls(trained):
    res, _, _ = trained
    assert res.step == TINY.max_steps
    first, last = np.mean(res.losses[:5]), np.mean(res.losses[-5:])
    assert last < 0.6 * first, (first, last)


def test_checkpoint_loads_in_clip_encoder_and_matching_captions_score_higher(trained):
    from recagent.retrieval.clip import ClipEncoder

    res, out, _ = trained
    enc = ClipEncoder(checkpoint=out / CHECKPOINT)
    assert enc.dim == TINY.embed_dim and enc.name.startswith("clip:test-clip-tiny:")
    held_out, labels = make_pairs(16, seed=123)  # new pictures, never seen in training
    kinds = sorted(set(labels))
    img = enc.embed_images(held_out.images)
    txt = enc.embed_texts([f"a small picture of a {c} {s}" for c, s in kinds])
    sims = img @ txt.T
    truth = np.array([kinds.index(k) for k in labels])
    matching = sims[np.arange(len(truth)), truth]
    mismatched = np.where(np.eye(len(kinds), dtype=bool)[truth], np.nan, sims)
    assert np.mean(matching > np.nanmax(mismatched, axis=1)) >= 0.75  # top-1 among 8 captions (chance 0.125)
    assert matching.mean() > np.nanmean(mismatched) + 0.2


def test_untrained_model_does_not_match(text_model, tmp_path):
    # the same check on a model trained for 1 step stays near chance: the test above measures training
    from recagent.retrieval.clip import ClipEncoder

    pairs, _ = make_pairs(32)
    train_clip(pairs, tmp_path, ClipTrainConfig(**{**TINY.__dict__, "max_steps": 1}), text_model=text_model, progress=False)
    enc = ClipEncoder(checkpoint=tmp_path / CHECKPOINT)
    held_out, labels = make_pairs(16, seed=123)
    kinds = sorted(set(labels))
    sims = enc.embed_images(held_out.images) @ enc.embed_texts([f"a small picture of a {c} {s}" for c, s in kinds]).T
    assert np.mean(sims.argmax(1) == np.array([kinds.index(k) for k in labels])) < 0.75


def test_interrupted_run_resumes_to_the_same_weights(text_model, tmp_path):
    import torch

    pairs, _ = make_pairs(48)
    cfg = ClipTrainConfig(**{**TINY.__dict__, "max_steps": 8, "checkpoint_every": 2, "batch_size": 16})
    full = train_clip(pairs, tmp_path / "full", cfg, text_model=text_model, progress=False)

    def crash(step: int, loss: float) -> None:
        if step == 5:
            raise KeyboardInterrupt  # killed after step 5; the last checkpoint is step 4

    with pytest.raises(KeyboardInterrupt):
        train_clip(pairs, tmp_path / "cut", cfg, text_model=text_model, progress=False, on_step=crash)
    assert torch.load(tmp_path / "cut" / STATE, weights_only=False)["step"] == 4
    resumed = train_clip(pairs, tmp_path / "cut", cfg, text_model=text_model, progress=False, resume=True)
    assert resumed.step == full.step == 8
    assert resumed.losses == pytest.approx(full.losses, abs=1e-5)
    a = torch.load(tmp_path / "full" / CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)
    assert a["step"] == b["step"] == 8
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], atol=1e-5, rtol=1e-4)


def test_resume_refuses_other_data(text_model, tmp_path):
    pairs, _ = make_pairs(32)
    train_clip(pairs, tmp_path, ClipTrainConfig(**{**TINY.__dict__, "max_steps": 2}), text_model=text_model, progress=False)
    other, _ = make_pairs(33)
    with pytest.raises(ClipTrainError, match="other pairs"):
        train_clip(other, tmp_path, TINY, text_model=text_model, progress=False, resume=True)


def test_catalog_without_images_is_a_one_line_error(tmp_path):
    import pandas as pd

    from recagent.data.schema import Catalog

    cat = Catalog(pd.DataFrame({"item_id": ["a"], "title": ["A"], "text": [""], "categories": [[]],
                                "year": pd.array([pd.NA], dtype="Int64"), "image_path": [None]}), source="items.csv")
    with pytest.raises(ClipTrainError, match="items.csv: no item has a readable image"):
        pairs_from_catalog(cat)


@pytest.mark.slow
def test_killed_process_resumes_from_its_last_checkpoint(text_model, tmp_path):
    """A real SIGKILL mid-run (not an exception): the resumed run ends at the planned step."""
    out = tmp_path / "run"
    script = f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_finetune_clip import make_pairs, TINY
from recagent.finetune.clip_train import ClipTrainConfig, train_clip
pairs, _ = make_pairs(48)
cfg = ClipTrainConfig(**{{**TINY.__dict__, "max_steps": 40, "checkpoint_every": 2, "batch_size": 16}})
train_clip(pairs, {str(out)!r}, cfg, text_model={text_model!r}, progress=False, on_step=lambda s, l: time.sleep(0.2))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (out / STATE).exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    import torch

    cut = torch.load(out / STATE, weights_only=False)["step"]
    assert 2 <= cut < 40
    pairs, _ = make_pairs(48)
    cfg = ClipTrainConfig(**{**TINY.__dict__, "max_steps": 40, "checkpoint_every": 2, "batch_size": 16})
    res = train_clip(pairs, out, cfg, text_model=text_model, progress=False, resume=True)
    assert res.step == 40 and len(res.losses) == 40
    assert torch.load(out / CHECKPOINT, weights_only=True)["step"] == 40


@pytest.mark.model
def test_cli_trains_on_a_custom_catalog_and_search_uses_the_checkpoint(tmp_path):
    """`recagent finetune clip` on the user's own photos (real MiniLM text tower), then
    `recagent search --channel image` with that checkpoint."""
    import json as _json

    rng = np.random.default_rng(0)
    rows, log = ["item_id,title,text,image_path"], ["user_id,item_id,timestamp"]
    for i in range(24):
        c, s = list(COLOURS)[i % 4], SHAPES[(i // 4) % 2]
        picture(c, s, rng).save(tmp_path / f"p{i}.png")
        rows.append(f"p{i},{c.capitalize()} {s} no. {i},A {c} {s} on white,p{i}.png")
        log.append(f"u{i % 3},p{i},{i}")
    (tmp_path / "items.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "log.csv").write_text("\n".join(log) + "\n")
    env = {**os.environ, "RECAGENT_RUNS_DIR": str(tmp_path / "runs")}
    args = ["--items", str(tmp_path / "items.csv"), "--interactions", str(tmp_path / "log.csv")]
    p = subprocess.run([sys.executable, "-m", "recagent", "finetune", "clip", *args, "--max-steps", "3", "--batch-size", "8",
                        "--image-size", "16", "--out", str(tmp_path / "clip"), "--json"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    d = _json.loads(p.stdout)
    assert d["step"] == 3 and d["pairs"] == 24 and Path(d["checkpoint"]).is_file()
    p = subprocess.run([sys.executable, "-m", "recagent", "search", "a red ring", "--dataset", "custom",
                        "--set", f"data.items={tmp_path / 'items.csv'}", "--set", f"data.interactions={tmp_path / 'log.csv'}",
                        "--channel", "image", "--k", "3", "--json", "--quiet",
                        "--set", f"models.clip_checkpoint={d['checkpoint']}"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    hits = _json.loads(p.stdout)
    hits = hits if isinstance(hits, list) else hits.get("hits", hits.get("results"))
    assert len(hits) == 3 and all(h["item_id"].startswith("p") for h in hits)


def test_caption_prefixes_end_at_clause_boundaries():
    from recagent.finetune.clip_train import caption_prefixes

    assert caption_prefixes("A warm coat, wide cut. Dark tone; made for winter.") == [
        "A warm coat", "A warm coat, wide cut.", "A warm coat, wide cut. Dark tone"]
    assert caption_prefixes("a small picture of a red ring") == []
    assert caption_prefixes("mid-grey 3.5 inch heel") == []  # '.' inside a number or word is no boundary


def test_identical_captions_are_all_positives():
    """Plain InfoNCE would push an image away from its caption's duplicate; the loss does not."""
    import torch
    import torch.nn.functional as F

    from recagent.finetune.clip_train import contrastive_loss

    logits = torch.tensor([[5.0, 1.0, 0.0], [1.0, 5.0, 0.0], [0.0, 0.0, 5.0]])
    plain = (F.cross_entropy(logits, torch.arange(3)) + F.cross_entropy(logits.t(), torch.arange(3))) / 2
    assert contrastive_loss(logits, torch.tensor([0, 1, 2])).item() == pytest.approx(plain.item())
    # pairs 0 and 1 share a caption: equal similarity to both copies is the optimum, not a mistake
    dup = torch.tensor([0, 0, 2])
    even = torch.tensor([[5.0, 5.0, 0.0], [5.0, 5.0, 0.0], [0.0, 0.0, 5.0]])
    assert contrastive_loss(even, dup) < contrastive_loss(logits, dup)
    distinct = torch.tensor([0, 1, 2])  # as plain InfoNCE sees them: it prefers the copies apart
    assert contrastive_loss(logits, distinct) < contrastive_loss(even, distinct)


def test_caption_views_sample_prefixes_at_the_given_rate():
    import torch

    from recagent.finetune.clip_train import CaptionViews

    caps = ["A bag, small. Leather.", "A bag, large. Canvas.", "one clause"] * 200
    v = CaptionViews.of(caps)
    assert len(v.texts) == 6 and v.texts[v.full[0]] == caps[0]  # "A bag" is shared: each distinct text once
    idx = torch.arange(len(caps))
    assert torch.equal(v.sample(idx, 0.0, torch.Generator().manual_seed(0)), v.full)
    got = v.sample(idx, 0.5, torch.Generator().manual_seed(0))
    cut = got != v.full
    assert not cut[2::3].any()                       # a one-clause caption has no prefix
    assert 0.4 < cut[0::3].float().mean() < 0.6      # about half of the others are cut
    assert {v.texts[i] for i in got[0::3][cut[0::3]].tolist()} == {"A bag", "A bag, small."}
    assert torch.equal(got, v.sample(idx, 0.5, torch.Generator().manual_seed(0)))  # deterministic (resume)


def test_text_center_is_stored_and_subtracted_and_can_be_added_later(text_model, tmp_path):
    """center_text=True stores the mean unit text embedding; ClipEncoder subtracts it; adding it
    afterwards (center_checkpoint) gives the same vector, since it does not change training."""
    import torch

    from recagent.finetune.clip_train import center_checkpoint
    from recagent.retrieval.clip import ClipEncoder

    pairs, _ = make_pairs(32)
    cfg = ClipTrainConfig(**{**TINY.__dict__, "max_steps": 10})
    train_clip(pairs, tmp_path / "plain", cfg, text_model=text_model, progress=False)
    train_clip(pairs, tmp_path / "centred", ClipTrainConfig(**{**cfg.__dict__, "center_text": True}), text_model=text_model,
               progress=False)
    stored = torch.load(tmp_path / "centred" / CHECKPOINT, weights_only=True)["text_center"]
    assert stored.shape == (TINY.embed_dim,) and 0.05 < float(stored.norm()) <= 1.0
    plain, centred = ClipEncoder(checkpoint=tmp_path / "plain" / CHECKPOINT), ClipEncoder(checkpoint=tmp_path / "centred" / CHECKPOINT)
    assert plain.text_center is None
    texts = sorted(set(pairs.captions))
    raw = plain.embed_texts(texts)
    want = raw - stored.numpy()
    np.testing.assert_allclose(centred.embed_texts(texts), want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-5)
    assert np.linalg.norm(centred.embed_texts(texts).mean(0)) < np.linalg.norm(raw.mean(0))  # the shared direction is gone
    center_checkpoint(tmp_path / "plain" / CHECKPOINT, pairs.captions)
    later = torch.load(tmp_path / "plain" / CHECKPOINT, weights_only=True)
    torch.testing.assert_close(later["text_center"], stored, atol=1e-6, rtol=1e-5)
    assert later["step"] == 10
