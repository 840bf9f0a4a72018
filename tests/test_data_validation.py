"""Every kind of bad input gets one line naming file, row and column and the fix; nothing is a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image

from recagent.data import ReadOptions, load_files, validate_files
from recagent.errors import DataError

ITEMS = "item_id,title,categories,year\na,Alpha,Drama,1990\nb,Beta,Comedy|Drama,2001\nc,Gamma,,\n"
LOG = "user_id,item_id,timestamp,rating\nu1,a,100,5\nu1,b,200,3\nu2,c,150,4\n"


def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


def check(tmp_path, items=ITEMS, log=LOG, **opts):
    i = write(tmp_path, "items.csv", items)
    l_ = write(tmp_path, "log.csv", log)
    return validate_files(i, l_, opts=ReadOptions(**opts))


def one_line(msgs):
    assert msgs, "expected at least one message"
    for m in msgs:
        assert "\n" not in m and "Traceback" not in m
    return msgs[0]


def test_good_files_have_no_problems(tmp_path):
    r = check(tmp_path)
    assert r.errors == [] and r.warnings == []


def test_missing_file(tmp_path):
    r = validate_files(tmp_path / "nope.csv", None)
    assert "nope.csv: file not found" in one_line(r.errors)


def test_missing_column_lists_found_columns_and_accepted_names(tmp_path):
    r = check(tmp_path, items="item_id,name_of_film\na,Alpha\n")
    msg = one_line(r.errors)
    assert "items.csv: missing column 'title'" in msg and "found: item_id, name_of_film" in msg and "movie_title" in msg


def test_wrong_type_year(tmp_path):
    r = check(tmp_path, items="item_id,title,year\na,Alpha,1990\nb,Beta,nineteen\n")
    assert one_line(r.errors).startswith("items.csv row 2, column 'year': 'nineteen' is not a year; use a 4-digit year")


def test_duplicate_item_ids(tmp_path):
    r = check(tmp_path, items="item_id,title\nx9,A\ny,B\nx9,C\n")
    assert one_line(r.errors) == ("items.csv row 3, column 'item_id': 'x9' appears twice (first at row 1); "
                                  "item ids must be unique.")


def test_unknown_items_are_dropped_with_a_counted_warning(tmp_path):
    r = check(tmp_path, log=LOG + "u3,zzz,300,4\nu3,yyy,301,4\n")
    assert r.errors == []
    msg = one_line(r.warnings)
    assert "2 of 5 interactions name items not in the catalog" in msg and "'zzz' (row 4)" in msg and "dropped" in msg
    ds = load_files(tmp_path / "items.csv", tmp_path / "log.csv")
    assert len(ds.interactions) == 3 and ds.warnings


def test_empty_timestamp(tmp_path):
    r = check(tmp_path, log="user_id,item_id,timestamp\nu1,a,100\nu1,b,\n")
    assert one_line(r.errors).startswith("log.csv row 2, column 'timestamp': empty timestamp; give a Unix time")


def test_non_numeric_timestamp_but_iso_dates_are_fine(tmp_path):
    r = check(tmp_path, log="user_id,item_id,timestamp\nu1,a,yesterday\nu1,b,2024-05-01T12:00:00\n")
    assert one_line(r.errors).startswith("log.csv row 1, column 'timestamp': 'yesterday' is not a number or an ISO 8601 date")
    assert len(r.errors) == 1  # the ISO date parsed


def test_rating_out_of_range_and_not_a_number(tmp_path):
    r = check(tmp_path, log="user_id,item_id,timestamp,rating\nu1,a,1,5\nu1,b,2,7\nu2,c,3,good\n")
    msgs = "\n".join(r.errors)
    assert "log.csv row 3, column 'rating': 'good' is not a number" in msgs
    assert "log.csv row 2, column 'rating': 7 is outside [0, 5]; fix the value or set data.rating_min / data.rating_max" in msgs
    assert check(tmp_path, log="user_id,item_id,timestamp,rating\nu1,a,1,7\n", rating_max=10).ok


def test_unreadable_images_are_warnings_and_items_are_kept(tmp_path):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    items = "item_id,title,image_path\na,Alpha,ok.png\nb,Beta,broken.png\nc,Gamma,missing.png\n"
    r = check(tmp_path, items=items)
    assert r.errors == []
    w = "\n".join(r.warnings)
    assert "items.csv row 2, column 'image_path': 'broken.png' is not a readable image" in w
    assert "items.csv row 3, column 'image_path': 'missing.png' not found" in w
    assert "2 of 3 images unreadable" in w
    ds = load_files(tmp_path / "items.csv", tmp_path / "log.csv")
    assert ds.catalog.items["image_path"].notna().tolist() == [True, False, False]


def test_not_utf8_names_line_and_fix(tmp_path):
    i = write(tmp_path, "items.csv", "item_id,title\na,Alpha\nb,Caf\u00e9\n", encoding="latin-1")
    r = validate_files(i, None)
    msg = one_line(r.errors)
    assert msg.startswith("items.csv line 3: byte 0xe9 is not valid utf-8") and "data.encoding=latin-1" in msg
    assert validate_files(i, None, opts=ReadOptions(encoding="latin-1")).ok


@pytest.mark.parametrize("text", ["", "item_id,title\n"])
def test_zero_rows(tmp_path, text):
    r = check(tmp_path, items=text)
    msg = one_line(r.errors)
    assert msg.startswith("items.csv:") and ("0 rows" in msg or "empty" in msg)


def test_ragged_csv_is_one_line(tmp_path):
    r = check(tmp_path, items="item_id,title\na,Alpha\nb,Beta,extra,fields\n")
    assert one_line(r.errors).startswith("items.csv row 2: 4 fields but the header has 2 (item_id, title) in 'b,Beta,extra,fields'")


def test_load_raises_first_error_as_data_error(tmp_path):
    write(tmp_path, "items.csv", "item_id,title\nx,A\nx,B\n")
    write(tmp_path, "log.csv", LOG)
    with pytest.raises(DataError, match="appears twice"):
        load_files(tmp_path / "items.csv", tmp_path / "log.csv")


def test_other_formats_load_the_same_table(tmp_path):
    base = load_files(write(tmp_path, "items.csv", ITEMS), write(tmp_path, "log.csv", LOG))
    # TSV
    tsv = load_files(write(tmp_path, "items.tsv", ITEMS.replace(",", "\t")), write(tmp_path, "log.tsv", LOG.replace(",", "\t")))
    # JSONL with native lists
    jl_items = "\n".join(json.dumps(r) for r in [
        {"item_id": "a", "title": "Alpha", "categories": ["Drama"], "year": 1990},
        {"item_id": "b", "title": "Beta", "categories": ["Comedy", "Drama"], "year": 2001},
        {"item_id": "c", "title": "Gamma", "categories": [], "year": None}])
    jl_log = "\n".join(json.dumps(r) for r in [
        {"user_id": "u1", "item_id": "a", "timestamp": 100, "rating": 5},
        {"user_id": "u1", "item_id": "b", "timestamp": 200, "rating": 3},
        {"user_id": "u2", "item_id": "c", "timestamp": 150, "rating": 4}])
    jl = load_files(write(tmp_path, "items.jsonl", jl_items), write(tmp_path, "log.jsonl", jl_log))
    # Parquet
    pd.read_json(tmp_path / "items.jsonl", lines=True).to_parquet(tmp_path / "items.parquet")
    pd.read_json(tmp_path / "log.jsonl", lines=True).to_parquet(tmp_path / "log.parquet")
    pq = load_files(tmp_path / "items.parquet", tmp_path / "log.parquet")
    # RecBole atomic files
    rb = load_files(
        write(tmp_path, "x.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                  "a\tAlpha\t1990\tDrama\nb\tBeta\t2001\tComedy Drama\nc\tGamma\t\t\n"),
        write(tmp_path, "x.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                   "u1\ta\t5\t100\nu1\tb\t3\t200\nu2\tc\t4\t150\n"))
    for ds in (tsv, jl, pq, rb):
        assert ds.catalog.items["categories"].tolist() == base.catalog.items["categories"].tolist()
        assert ds.catalog.items["year"].tolist() == base.catalog.items["year"].tolist()
        assert ds.interactions.df[["user_id", "item_id", "timestamp", "rating"]].equals(
            base.interactions.df[["user_id", "item_id", "timestamp", "rating"]])


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "recagent", *args], capture_output=True, text=True, timeout=120)


def test_cli_validate_reports_one_line_per_problem_and_exits_1(tmp_path):
    write(tmp_path, "items.csv", "item_id,title,year\na,A,1990\na,B,abc\n")
    write(tmp_path, "log.csv", "user_id,item_id,timestamp,rating\nu,a,1,9\n")
    p = run_cli("data", "validate", "--items", str(tmp_path / "items.csv"), "--interactions", str(tmp_path / "log.csv"))
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr
    assert lines[0] == "error: items.csv row 2, column 'item_id': 'a' appears twice (first at row 1); item ids must be unique."
    assert any(line.startswith("error: items.csv row 2, column 'year': 'abc' is not a year") for line in lines)


def test_cli_validate_strict_turns_warnings_into_failure(tmp_path):
    write(tmp_path, "items.csv", ITEMS)
    write(tmp_path, "log.csv", LOG + "u9,nope,5,5\n")
    args = ["data", "validate", "--items", str(tmp_path / "items.csv"), "--interactions", str(tmp_path / "log.csv")]
    ok = run_cli(*args)
    assert ok.returncode == 0 and "1 warnings" in ok.stdout
    strict = run_cli(*args, "--strict", "--json")
    assert strict.returncode == 1
    out = json.loads(strict.stdout)
    assert out["ok"] is False and len(out["warnings"]) == 1


def test_cli_missing_file_is_one_line_not_a_traceback(tmp_path):
    p = run_cli("data", "info", "--items", str(tmp_path / "none.csv"), "--interactions", str(tmp_path / "none2.csv"))
    assert p.returncode == 1
    assert p.stderr.strip().count("\n") == 0 and "Traceback" not in p.stderr
    assert "none.csv: file not found" in p.stderr


def test_own_files_with_a_built_in_data_set_are_an_error_not_ignored(tmp_path):
    """`--set data.items=...` without data.dataset=custom used to serve ML-100K silently, with
    the user's nouns: "Mission: Impossible is a Mystery book"."""
    from recagent.config import load_config
    from recagent.data import load_dataset

    i, l_ = write(tmp_path, "books.csv", ITEMS), write(tmp_path, "log.csv", LOG)
    cfg = load_config(None, [f"data.items={i}", f"data.interactions={l_}"])
    with pytest.raises(DataError, match=r"data.dataset=custom") as e:
        load_dataset(cfg)
    assert "books.csv" in str(e.value) and "\n" not in str(e.value)
    ds = load_dataset(cfg.replace("data", dataset="custom"))
    assert sorted(ds.catalog.ids) == ["a", "b", "c"]
