"""Shared fixtures. Threads are pinned to 1: two threads on two busy cores can be 100x slower."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# Tests never read or write the developer's ./runs (trained models there would change what
# "auto" choices pick); one fresh runs folder per test session, shared by subprocesses.
import tempfile  # noqa: E402

os.environ.setdefault("RECAGENT_RUNS_DIR", tempfile.mkdtemp(prefix="recagent-test-runs-"))

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

try:  # torch is heavy; only pin its threads when a test imports it anyway
    import torch  # noqa: E402

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

from recagent.config import load_config  # noqa: E402
from recagent.paths import default_cache_dir  # noqa: E402


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The real cache (models and ML-100K, fetched by `./run test` before pytest starts)."""
    return default_cache_dir()


@pytest.fixture(scope="session")
def cfg(cache_dir):
    """Default config pointing at the real cache."""
    return load_config(overrides=[f"paths.cache_dir={cache_dir}"])


@pytest.fixture(scope="session")
def ml100k(cfg):
    """The built-in ML-100K data set (loaded once per session)."""
    from recagent.data import load_dataset

    return load_dataset(cfg, "ml-100k")


TINY_ITEMS = """item_id,title,text,categories,year
i1,Star Voyage,A crew of explorers and robots crosses the galaxy,Sci-Fi|Adventure,1977
i2,Robot Uprising,Robots take over a space station,Sci-Fi|Action,1984
i3,Love in Paris,Two strangers fall in love in Paris,Romance|Comedy,1995
i4,Wedding Season,A romantic comedy about weddings,Romance|Comedy,1998
i5,Haunted Manor,A family moves into a haunted house,Horror,1980
i6,Night Terrors,A ghost story in a haunted village,Horror|Thriller,1990
i7,Galaxy Pirates,Space pirates and robots fight across planets,Sci-Fi|Action|Adventure,2001
i8,Cooking with Mom,A warm family drama about cooking,Drama,2005
"""


@pytest.fixture
def tiny_files(tmp_path) -> dict[str, Path]:
    """An 8-item catalog and a small log with known structure (sci-fi fans, romance fans)."""
    items = tmp_path / "items.csv"
    items.write_text(TINY_ITEMS, encoding="utf-8")
    rows = ["user_id,item_id,timestamp,rating"]
    t = 1_000_000
    for u in range(6):
        liked = ["i1", "i2", "i7"] if u % 2 == 0 else ["i3", "i4", "i8"]
        for j, it in enumerate(liked):
            rows.append(f"u{u},{it},{t + 100 * u + j},5")
        rows.append(f"u{u},i5,{t + 100 * u + 9},2")
    inter = tmp_path / "log.csv"
    inter.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {"items": items, "interactions": inter}


@pytest.fixture
def tiny(tiny_files):
    from recagent.data import load_files

    return load_files(tiny_files["items"], tiny_files["interactions"], name="tiny")
