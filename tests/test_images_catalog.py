"""The built-in image catalog (recagent/data/images.py, data/builtin.py): readable generated
titles that follow the pixels, synthetic users whose logs follow their tastes, `data list`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from recagent.data.images import CLASSES, describe_items, simulate_users


def fake_pixels(n_per_class: int = 30, seed: int = 0):
    """Fashion-MNIST-shaped data: a bright-on-black blob per image whose intensity and size vary."""
    rng = np.random.default_rng(seed)
    px, labels = [], []
    for c in range(len(CLASSES)):
        for _ in range(n_per_class):
            a = np.zeros((28, 28), np.uint8)
            h = rng.integers(6, 13)
            a[14 - h:14 + h, 14 - h:14 + h] = rng.integers(40, 255)
            if rng.random() < 0.5:
                a[::3] = a[::3] // 3  # stripes: a patterned surface
            px.append(a)
            labels.append(c)
    px, labels = np.stack(px), np.array(labels)
    return px, labels, np.zeros(len(labels), bool)


@pytest.fixture(scope="module")
def items():
    return describe_items(*fake_pixels())


def test_titles_and_texts_are_readable_and_name_the_class(items):
    for _, row in items.iterrows():
        name = row["class"]
        assert name.lower() in row["title"].lower()
        assert row["material"] in row["title"] and row["material"] in row["text"]
        assert row["text"].endswith(".") and len(row["text"].split()) >= 12
        assert row["categories"].split("|")[0] == name
    assert items["item_id"].is_unique and items["title"].nunique() > len(items) * 0.8


def test_tone_follows_the_pixels(items):
    px, _, _ = fake_pixels()
    # the photo shows the product dark when the Fashion-MNIST value is high (inverted storage)
    ink = np.array([p[p > 20].mean() for p in px])
    assert ink[items["tone"] == "dark"].mean() > ink[items["tone"] == "light"].mean() + 50


def test_generation_is_deterministic():
    a, b = describe_items(*fake_pixels()), describe_items(*fake_pixels())
    pd.testing.assert_frame_equal(a, b)


def test_synthetic_users_follow_their_tastes(items):
    users, inter = simulate_users(items, n_users=40, per_user=10, seed=3)
    assert users["synthetic"].all() and len(inter) == 400
    by_item = items.set_index("item_id")
    liked_share, mat_share = [], []
    for u, g in inter.groupby("user_id"):
        row = users.set_index("user_id").loc[u]
        liked = set(row["liked_classes"].split("|"))
        mats = set(row["liked_materials"].split("|"))
        liked_share.append(by_item.loc[g["item_id"], "class"].isin(liked).mean())
        mat_share.append(by_item.loc[g["item_id"], "material"].isin(mats).mean())
    assert np.mean(liked_share) > 0.6       # chance: 2 of 10 classes = 0.2
    assert np.mean(mat_share) > 0.3         # chance: about 2 of ~35 materials
    again = simulate_users(items, n_users=40, per_user=10, seed=3)[1]
    pd.testing.assert_frame_equal(inter, again)


def test_picture_taste_shows_in_the_logs(items):
    # users with opposite style directions pick items on opposite sides of the style axis
    _, inter = simulate_users(items, n_users=60, per_user=10, seed=5, w_class=0.0, w_text=0.0, w_image=3.0)
    users, _ = simulate_users(items, n_users=60, per_user=10, seed=5, w_class=0.0, w_text=0.0, w_image=3.0)
    style = items.set_index("item_id")[["style_1", "style_2"]]
    agree = []
    for u, g in inter.groupby("user_id"):
        a = users.set_index("user_id").loc[u, "style_angle"]
        d = np.array([np.cos(a), np.sin(a)])
        agree.append(float((style.loc[g["item_id"]].to_numpy() @ d).mean()))
    assert np.mean(agree) > 0.8


def _fake_cached(cache, name: str, items: pd.DataFrame, images: bool = True):
    """A cached built-in folder as a pull leaves it (files + manifest with the generator version)."""
    from PIL import Image

    from recagent.data.builtin import BUILTIN, dataset_dir
    from recagent.fetch import write_manifest

    d = dataset_dir(cache, name)
    d.mkdir(parents=True)
    if images:
        for p in items["image_path"]:
            (d / p).parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", (28, 28), 200).save(d / p)
    users, inter = simulate_users(items, n_users=12, per_user=5)
    items.to_csv(d / "items.csv", index=False)
    users.to_csv(d / "users.csv", index=False)
    inter.to_csv(d / "interactions.csv", index=False)
    write_manifest(d, {"package": "test"}, {"generator": BUILTIN[name].generator})
    return d


def test_generated_builtin_loads_without_the_movielens_cleaning(tmp_path, items):
    from recagent.config import load_config
    from recagent.data import load_dataset

    small = items.head(40)
    _fake_cached(tmp_path, "fashion-mnist-2k", small)
    cfg = load_config(None, (f"paths.cache_dir={tmp_path}",))
    ds = load_dataset(cfg, "fashion-mnist-2k")
    assert ds.builtin and ds.n_items == 40 and ds.catalog.has_images
    assert ds.catalog.items["categories"][0] == small["categories"][0].split("|")
    assert ds.catalog.items["title"][0] == small["title"][0]  # no MovieLens article moving


def test_data_list_json_counts_users_items_and_images(tmp_path, items):
    from click.testing import CliRunner

    from recagent.cli import cli

    _fake_cached(tmp_path, "fashion-mnist-2k", items.head(25))
    res = CliRunner().invoke(cli, ["data", "list", "--json", "--set", f"paths.cache_dir={tmp_path}"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert {"ml-100k", "fashion-mnist", "fashion-mnist-2k"} <= set(rows)
    got = rows["fashion-mnist-2k"]
    assert got["cached"] and got["items"] == 25 and got["items_with_images"] == 25 and got["users"] == 12
    assert rows["fashion-mnist"]["cached"] is False and rows["fashion-mnist"]["items"] is None
    assert "MIT" in got["licence"] and "SYNTHETIC" in got["licence"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None, reason="needs apt-get and dpkg-deb")
def test_pull_fashion_mnist_2k_from_the_debian_package(tmp_path, cache_dir):
    """The real pull: apt-get download (reusing the cached .deb), sha256 checks, generated files."""
    from recagent.data.builtin import builtin_summary, pull_builtin
    from recagent.data.images import DEB_PACKAGE

    (tmp_path / "downloads").mkdir()
    for deb in (cache_dir / "downloads").glob(f"{DEB_PACKAGE}_*.deb"):
        shutil.copy(deb, tmp_path / "downloads")
    folder = pull_builtin("fashion-mnist-2k", tmp_path, log=lambda s: None)
    s = builtin_summary("fashion-mnist-2k", tmp_path)
    assert s["items"] == s["items_with_images"] == 2000 and s["users"] == 300
    items = pd.read_csv(folder / "items.csv")
    assert set(items["class"]) == {c[0] for c in CLASSES}
    assert (folder / items["image_path"][0]).stat().st_size > 100
