"""`data.images_dir` (`recagent finetune --images DIR`): relative image paths resolve against a
folder of photos kept apart from the catalog file; paths leaving that folder are still refused."""

from __future__ import annotations

import pytest


def _write(tmp_path):
    from PIL import Image

    (tmp_path / "data").mkdir()
    photos = tmp_path / "photos"
    (photos / "mugs").mkdir(parents=True)
    for name, colour in [("mugs/red.png", "red"), ("mugs/blue.png", "blue")]:
        Image.new("RGB", (8, 8), colour).save(photos / name)
    (tmp_path / "secret.png").write_bytes((photos / "mugs" / "red.png").read_bytes())
    (tmp_path / "data" / "items.csv").write_text(
        "item_id,title,categories,image_path\nm1,Red Mug,Kitchen,mugs/red.png\nm2,Blue Mug,Kitchen,mugs/blue.png\n"
        "m3,Odd Mug,Kitchen,../secret.png\n", encoding="utf-8")
    (tmp_path / "data" / "log.csv").write_text("user_id,item_id,timestamp\nu1,m1,1\nu1,m2,2\nu2,m2,3\nu2,m3,4\n", encoding="utf-8")
    return tmp_path / "data" / "items.csv", tmp_path / "data" / "log.csv", photos


def test_relative_images_resolve_against_the_images_folder(tmp_path):
    from recagent.data import load_files
    from recagent.data.loaders import ReadOptions

    items, log, photos = _write(tmp_path)
    plain = load_files(items, log)
    assert plain.catalog.items["image_path"].isna().all()  # beside the catalog there are no photos
    ds = load_files(items, log, opts=ReadOptions(images_dir=str(photos)))
    paths = dict(zip(ds.catalog.ids, ds.catalog.items["image_path"]))
    assert paths["m1"] == str((photos / "mugs" / "red.png").resolve())
    assert paths["m2"].endswith("blue.png")
    assert paths["m3"] is None or paths["m3"] != paths["m3"]  # '../secret.png' leaves the folder: refused
    assert any("outside the image folder" in w for w in ds.warnings)


def test_finetune_images_option_must_be_a_folder(tmp_path, cfg):
    from recagent.errors import ConfigError
    from recagent.finetune.pipeline import finetune

    items, log, _ = _write(tmp_path)
    with pytest.raises(ConfigError, match="--images"):
        finetune(cfg, tmp_path / "run", items=str(items), interactions=str(log), images=str(tmp_path / "nope"))
    assert not (tmp_path / "run").exists()
