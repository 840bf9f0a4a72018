"""ClipEncoder on a tiny random open_clip model; image and cross-modal channels with bad images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recagent.config import load_config
from recagent.data import Catalog
from recagent.errors import ModelError
from recagent.retrieval import HashEncoder, ItemIndex

TINY_ARCH = "recagent-tiny-clip"
TINY_CFG = {"embed_dim": 32,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
            "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
           "purple": (140, 30, 160), "white": (250, 250, 250)}


@pytest.fixture(scope="module")
def clip_ckpt(tmp_path_factory):
    import open_clip
    import torch

    from recagent.retrieval.clip import register_model_config, save_clip_checkpoint

    torch.manual_seed(0)
    register_model_config(TINY_ARCH, TINY_CFG)
    model, _, _ = open_clip.create_model_and_transforms(TINY_ARCH, pretrained=None)
    return save_clip_checkpoint(model, TINY_ARCH, tmp_path_factory.mktemp("clip") / "tiny.pt", model_cfg=TINY_CFG)


@pytest.fixture(scope="module")
def clip(clip_ckpt):
    from recagent.retrieval.clip import ClipEncoder

    return ClipEncoder("ViT-B-32", checkpoint=clip_ckpt)  # the checkpoint's arch wins


def _images(folder) -> dict[str, str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        arr = np.clip(np.array(rgb)[None, None, :] + rng.integers(-10, 10, (40, 48, 3)), 0, 255).astype("uint8")
        arr[::8] = 0  # some structure, so different colours are not just scaled copies
        p = folder / f"{name}.png"
        Image.fromarray(arr).save(p)
        paths[name] = str(p)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    paths["corrupt"] = str(folder / "corrupt.png")
    paths["missing"] = str(folder / "missing.png")
    return paths


def _catalog(paths: dict[str, str]) -> Catalog:
    rows = [{"item_id": f"c-{name}", "title": f"The {name} one", "text": f"an item that is {name}",
             "categories": ["Art"], "year": 2000 + i, "image_path": p} for i, (name, p) in enumerate(paths.items())]
    rows.append({"item_id": "c-noimage", "title": "No picture", "text": "text only", "categories": [], "year": None,
                 "image_path": None})
    df = pd.DataFrame(rows)
    df["year"] = df["year"].astype("Int64")
    return Catalog(df)


def test_encoder_embeds_normalised_and_names_its_checkpoint(clip, clip_ckpt):
    from PIL import Image

    img = Image.new("RGB", (50, 30), (10, 200, 10))
    e_img = clip.embed_images([img, img, img], batch_size=2)
    e_txt = clip.embed_texts(["a green square", "a red square"])
    assert e_img.shape == (3, 32) and e_txt.shape == (2, 32) and e_img.dtype == np.float32
    assert np.allclose(np.linalg.norm(e_img, axis=1), 1.0, atol=1e-5)
    assert np.allclose(e_img[0], e_img[2], atol=1e-5)
    assert clip.arch == TINY_ARCH and clip.name.startswith(f"clip:{TINY_ARCH}:tiny.pt#")


def test_checkpoint_round_trip_gives_the_same_embeddings(clip, clip_ckpt, tmp_path):
    import torch

    from recagent.retrieval.clip import ClipEncoder

    # a bare state dict with "module." prefixes (as DDP training saves) loads too
    sd = torch.load(clip_ckpt, weights_only=True)["state_dict"]
    bare = tmp_path / "bare.pt"
    torch.save({f"module.{k}": v for k, v in sd.items()}, bare)
    other = ClipEncoder(TINY_ARCH, checkpoint=bare)
    texts = ["robots in space", "a love story"]
    assert np.allclose(other.embed_texts(texts), clip.embed_texts(texts), atol=1e-5)


def test_bad_checkpoints_raise_model_errors(tmp_path, clip_ckpt):
    import torch

    from recagent.retrieval.clip import ClipEncoder

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable torch checkpoint"):
        ClipEncoder(TINY_ARCH, checkpoint=junk)
    wrong = tmp_path / "wrong.pt"
    sd = torch.load(clip_ckpt, weights_only=True)["state_dict"]
    torch.save({"arch": TINY_ARCH, "state_dict": {k: v for k, v in list(sd.items())[:-3]}}, wrong)
    with pytest.raises(ModelError, match="do not fit"):
        ClipEncoder(TINY_ARCH, checkpoint=wrong)


def test_from_config_is_none_without_weights_and_loads_a_configured_checkpoint(clip_ckpt, tmp_path):
    from recagent.retrieval.clip import ClipEncoder

    assert ClipEncoder.from_config(load_config()) is None
    enc = ClipEncoder.from_config(load_config(overrides=[f"models.clip_checkpoint={clip_ckpt}"]))
    assert enc is not None and enc.dim == 32
    with pytest.raises(ModelError, match="not found"):
        ClipEncoder.from_config(load_config(overrides=[f"models.clip_checkpoint={tmp_path / 'none.pt'}"]))


def test_index_with_bad_images_indexes_the_rest_and_reports_them(clip, tmp_path):
    paths = _images(tmp_path / "img")
    cat = _catalog(paths)
    cfg = load_config(overrides=[f"paths.runs_dir={tmp_path / 'runs'}", "retrieval.batch_size=3"])
    index = ItemIndex.open(cfg, "pics", text_encoder=HashEncoder(64), clip_encoder=clip)
    report = index.build(cat)
    bad = dict(report.bad_images)
    assert set(bad) == {"c-corrupt", "c-missing"} and "not found" in bad["c-missing"] and "unreadable" in bad["c-corrupt"]
    assert sorted(index.ids("image")) == sorted(f"c-{n}" for n in COLOURS)
    assert len(index.ids("text")) == len(index.ids("clip_text")) == len(cat) == 9
    # image -> image: each picture finds itself first
    for name in ("red", "blue", "white"):
        hits = index.query_image(paths[name], k=3)
        assert hits[0].item_id == f"c-{name}" and hits[0].channel == "image"
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    # text -> image through the CLIP text tower, with a filter
    hits = index.query_text("a blue picture", k=4, channels="image", year_max=2002)
    assert len(hits) == 3 and all(h.channel == "image" for h in hits)
    assert {h.item_id for h in hits} == {"c-red", "c-green", "c-blue"}
    # several channels merged, each item once
    multi = index.query_text("an item that is purple", k=9, channels=["clip_text", "image", "text"])
    assert len({h.item_id for h in multi}) == len(multi) == 9
    assert {h.channel for h in multi} <= {"clip_text", "image", "text"}


def test_an_image_turning_corrupt_loses_its_image_embedding_on_rebuild(clip, tmp_path):
    paths = _images(tmp_path / "img")
    cat = _catalog({k: paths[k] for k in ("red", "green")})
    cfg = load_config(overrides=[f"paths.runs_dir={tmp_path / 'runs'}"])
    index = ItemIndex.open(cfg, "pics", text_encoder=HashEncoder(64), clip_encoder=clip)
    index.build(cat)
    assert sorted(index.ids("image")) == ["c-green", "c-red"]
    with open(paths["red"], "wb") as f:
        f.write(b"garbage now")
    report = index.build(cat)
    assert [i for i, _ in report.bad_images] == ["c-red"]
    assert index.ids("image") == ["c-green"]
    assert report.channels["text"]["unchanged"] == 3


def test_chat_ranker_searches_pictures_when_the_index_has_them(clip, tmp_path):
    """With an image channel, the chat's asks and 'more like this' also search the pictures."""
    from recagent.agent.fusion_ranker import FusionCandidateRanker
    from recagent.data.schema import Dataset, Interactions

    paths = {k: v for k, v in _images(tmp_path / "img").items() if k not in ("corrupt", "missing")}
    cat = _catalog(paths)
    log = pd.DataFrame({"user_id": ["u1"], "item_id": ["c-red"], "timestamp": [1.0], "rating": [5.0], "row": [0]})
    ds = Dataset("pics", cat, Interactions(log))
    cfg = load_config(overrides=[f"paths.runs_dir={tmp_path / 'runs'}"])
    with_pics = ItemIndex.open(cfg, "pics", text_encoder=HashEncoder(64), clip_encoder=clip)
    with_pics.build(cat)
    assert FusionCandidateRanker(ds, with_pics, fusion=None).channels == ("text", "image")
    text_only = ItemIndex.open(cfg.replace("paths", runs_dir=str(tmp_path / "runs2")), "pics",
                               text_encoder=HashEncoder(64), clip_encoder=None)
    text_only.build(cat)
    assert FusionCandidateRanker(ds, text_only, fusion=None).channels == ("text",)
    # what the ranker asks the index for: visual neighbours of a liked picture come from the image channel
    hits = with_pics.query_items(["c-red"], 3, channels=("text", "image"))
    assert "image" in {h.channel for h in hits}
