"""Real text encoder on ML-100K: the index returns sensible films; the CLI prints them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from recagent.retrieval import ItemIndex

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def index(cfg, ml100k, runs):
    idx = ItemIndex.open(cfg.replace("paths", runs_dir=str(runs)), "ml-100k")
    report = idx.build(ml100k)
    assert report.channels["text"]["total"] == ml100k.n_items == 1682
    return idx


def _genres(ml100k, hits):
    return [ml100k.catalog.get(h.item_id)["categories"] for h in hits]


def test_space_adventure_with_robots_finds_sci_fi(index, ml100k):
    hits = index.query_text("space adventure with robots", k=10)
    genres = _genres(ml100k, hits)
    assert sum("Sci-Fi" in g for g in genres) >= 5
    titles = [ml100k.catalog.title(h.item_id) for h in hits]
    assert any("Star" in t or "Space" in t for t in titles)


@pytest.mark.parametrize("title", ["Toy Story", "Pulp Fiction", "Fargo", "Star Wars"])
def test_a_query_naming_a_title_returns_it_first(index, ml100k, title):
    hit = index.query_text(title, k=5)[0]
    assert ml100k.catalog.title(hit.item_id) == title


def test_genre_queries_and_filters_on_real_data(index, ml100k):
    horror = index.query_text("scary haunted house horror movie", k=10)
    assert sum("Horror" in g for g in _genres(ml100k, horror)) >= 6
    kids = index.query_text("animated film for children", k=10, exclude_categories=["Horror"], year_min=1990)
    assert all("Horror" not in g for g in _genres(ml100k, kids))
    assert all(ml100k.catalog.get(h.item_id)["year"] >= 1990 for h in kids)
    assert sum("Children's" in g or "Animation" in g for g in _genres(ml100k, kids)) >= 6


def test_neighbours_of_star_wars_are_space_films(index, ml100k):
    hits = index.query_items(["50"], k=10)  # 50 = Star Wars (1977)
    assert "50" not in {h.item_id for h in hits}
    assert sum("Sci-Fi" in g for g in _genres(ml100k, hits)) >= 5


def test_cli_search_json_builds_on_first_use(cfg, runs, tmp_path):
    from recagent.cli import cli

    runner = CliRunner()
    env = {"RECAGENT_RUNS_DIR": str(tmp_path / "fresh"), "RECAGENT_CACHE_DIR": str(cfg.paths.cache)}
    res = runner.invoke(cli, ["search", "space adventure with robots", "--dataset", "ml-100k", "--k", "10", "--json"], env=env)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(data["results"]) == 10
    assert set(data["results"][0]) == {"item_id", "title", "score", "channel"}
    assert (tmp_path / "fresh" / "ml-100k" / "index").is_dir()
    res = runner.invoke(cli, ["search", "Fargo", "--k", "3", "--json", "--set", f"paths.runs_dir={runs}"])
    assert res.exit_code == 0, res.output
    first = json.loads(res.stdout.strip().splitlines()[-1])["results"][0]
    assert first["title"] == "Fargo" and first["item_id"] == "100" and first["channel"] == "text"
