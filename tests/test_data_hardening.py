"""Issue 9 (defects 5, 7, 8): bad input is a one-line error or a warning naming file, row and
column and the fix; never a silent column shift, a hang, a traceback or an unescaped formula."""

from __future__ import annotations

import math
import os
import threading

import pytest
from PIL import Image

from recagent.data import load_files, make_split, validate_files
from recagent.errors import DataError

ITEMS = "item_id,title,year\na,Alpha,1990\nb,Beta,2001\nc,Gamma,\n"
LOG = "user_id,item_id,timestamp,rating\nu1,a,100,5\nu1,b,200,3\nu2,c,150,4\nu2,a,160,5\n"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return p


def check(tmp_path, items=ITEMS, log=LOG, items_name="items.csv", log_name="log.csv"):
    return validate_files(write(tmp_path, items_name, items), write(tmp_path, log_name, log) if log else None)


def one_line(msgs):
    assert msgs, "expected at least one message"
    for m in msgs:
        assert "\n" not in m and "Traceback" not in m
    return msgs[0]


# ----------------------------------------------------------------------------- defect 5: ragged rows


def test_unquoted_comma_in_a_title_is_an_error_naming_the_row_not_a_column_shift(tmp_path):
    # Before the fix pandas took the first column as the index: ids became titles, validate said ok.
    r = check(tmp_path, items="item_id,title,year\ni1,Toy Story, The,1995\ni2,Heat,1995\n", log=None)
    msg = one_line(r.errors)
    assert msg.startswith("items.csv row 1: 4 fields but the header has 3 (item_id, title, year)")
    assert "'i1,Toy Story, The,1995'" in msg
    assert msg.endswith("quote any value that contains ',' so it stays one field (e.g. \"a, b\").")


def test_extra_field_in_a_later_row_names_that_row(tmp_path):
    r = check(tmp_path, items="item_id,title,year\ni1,Heat,1995\ni2,Toy Story, The,1995\n", log=None)
    assert one_line(r.errors).startswith("items.csv row 2: 4 fields but the header has 3")


def test_trailing_commas_on_log_rows_are_an_error_not_timestamps_read_as_item_ids(tmp_path):
    log = "user_id,item_id,timestamp\nu1,a,100,\nu1,b,200,\n"
    r = check(tmp_path, log=log)
    msg = one_line(r.errors)
    assert msg.startswith("log.csv row 1: 4 fields but the header has 3") and msg.endswith("remove the trailing ','.")
    assert r.errors[1].startswith("log.csv row 2: 4 fields")


def test_short_row_missing_a_required_column_is_an_error(tmp_path):
    r = check(tmp_path, log="user_id,item_id,timestamp\nu1,a,100\nu1,b\n")
    msg = one_line(r.errors)
    assert msg.startswith("log.csv row 2: 2 fields but the header has 3") and "'timestamp'" in msg


def test_short_row_missing_only_an_optional_column_is_a_warning(tmp_path):
    r = check(tmp_path, items="item_id,title,year\na,Alpha,1990\nb,Beta\nc,Gamma,2001\n")
    assert r.errors == []
    assert one_line(r.warnings).startswith("items.csv row 2: 2 fields but the header has 3; 'year' read as empty")


def test_ragged_tsv_and_recbole_rows_too(tmp_path):
    r = validate_files(write(tmp_path, "x.item", "item_id:token\tmovie_title:token_seq\na\tAlpha\textra\n"), None)
    assert one_line(r.errors).startswith("x.item row 1: 3 fields but the header has 2")


def test_row_numbers_count_records_not_lines_when_a_quoted_value_spans_lines(tmp_path):
    items = 'item_id,title,year\ni1,"Two\nlines, one title",1995\n\ni2,Toy Story, The,1995\n'
    r = check(tmp_path, items=items, log=None)
    assert one_line(r.errors).startswith("items.csv row 2: 4 fields but the header has 3 (item_id, title, year) in 'i2,Toy")


def test_comma_separated_file_named_tsv_says_so(tmp_path):
    r = validate_files(write(tmp_path, "items.txt", "item_id,title\na,Alpha\n"), None)
    assert one_line(r.errors) == ("items.txt: the header has ',' but no tab, and .txt files are tab-separated; "
                                  "rename the file to .csv or save it with tabs.")


def test_quoted_commas_still_load(tmp_path):
    ds = load_files(write(tmp_path, "items.csv", 'item_id,title,year\ni1,"Toy Story, The",1995\n'),
                    write(tmp_path, "log.csv", "user_id,item_id,timestamp\nu1,i1,100\n"))
    assert ds.catalog.items["item_id"].tolist() == ["i1"] and ds.catalog.title("i1") == "Toy Story, The"


# ----------------------------------------------------------------------------- defect 7: timestamps


def test_only_word_timestamps_give_one_line_error_not_a_traceback(tmp_path):
    # Before: TypeError "Cannot cast DatetimeArray to dtype float64" when no cell parsed as a date.
    r = check(tmp_path, log="user_id,item_id,timestamp\nu1,a,yesterday\nu1,b,200\n")
    assert one_line(r.errors).startswith("log.csv row 1, column 'timestamp': 'yesterday' is not a number or an ISO 8601 date")


@pytest.mark.parametrize("word", ["now", "today", "Today "])
def test_now_and_today_are_not_dates(tmp_path, word):
    # pandas parses these as the current time even with format="ISO8601".
    r = check(tmp_path, log=f"user_id,item_id,timestamp\nu1,a,{word}\nu1,b,2024-05-01\n")
    assert one_line(r.errors).startswith(f"log.csv row 1, column 'timestamp': '{word.strip()}' is not a number")


@pytest.mark.parametrize("value", ["inf", "-inf", "1e20", "nan", "NaN", "1700000000000"])
def test_timestamps_outside_1900_to_2200_are_rejected(tmp_path, value):
    r = check(tmp_path, log=f"user_id,item_id,timestamp\nu1,a,{value}\nu1,b,200\n")
    msg = one_line(r.errors)
    assert msg.startswith("log.csv row 1, column 'timestamp':") and "1900" in msg and "2200" in msg


def test_millisecond_timestamps_get_a_hint(tmp_path):
    r = check(tmp_path, log="user_id,item_id,timestamp\nu1,a,1700000000000\n")
    assert "milliseconds" in one_line(r.errors)


def test_iso_dates_and_small_numbers_still_load(tmp_path):
    ds = load_files(write(tmp_path, "items.csv", ITEMS),
                    write(tmp_path, "log.csv", "user_id,item_id,timestamp\nu1,a,1\nu1,b,2024-05-01T12:00:00Z\n"
                                               "u1,c,-100\n"))
    ts = ds.interactions.df["timestamp"].tolist()
    assert ts[0] == 1.0 and ts[1] == 1714564800.0 and ts[2] == -100.0


def test_jsonl_and_parquet_timestamps_are_range_checked_too(tmp_path):
    import pandas as pd

    pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["a", "b"], "timestamp": [100.0, math.inf]}).to_parquet(tmp_path / "log.parquet")
    r = validate_files(write(tmp_path, "items.csv", ITEMS), tmp_path / "log.parquet")
    assert one_line(r.errors).startswith("log.parquet row 2, column 'timestamp':")


# ----------------------------------------------------------------------------- defect 7: every entry point


def cli(*args):
    """Run the real CLI in-process (as the `recagent` script does); returns (exit code, stderr)."""
    import contextlib
    import io

    from recagent.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        with pytest.raises(SystemExit) as exc:
            main(list(args))
    return exc.value.code, err.getvalue()


@pytest.fixture
def yesterday_files(tmp_path):
    write(tmp_path, "items.csv", ITEMS)
    write(tmp_path, "log.csv", "user_id,item_id,timestamp,rating\nu1,a,yesterday,5\nu1,b,200,4\n")
    return tmp_path / "items.csv", tmp_path / "log.csv"


@pytest.mark.parametrize("command", [
    ["data", "validate"],
    ["data", "info"],
    ["index", "build", "--dataset", "custom"],
    ["eval", "--dataset", "custom", "--protocol", "B", "--models", "pop"],
    ["chat", "--cli", "--dataset", "custom"],
])
def test_word_in_timestamp_column_is_one_line_from_every_command(yesterday_files, tmp_path, command):
    items, log = yesterday_files
    if command[0] == "data":
        args = [*command, "--items", str(items), "--interactions", str(log)]
    else:
        args = [*command, "--set", f"data.items={items}", "--set", f"data.interactions={log}",
                "--set", f"paths.runs_dir={tmp_path / 'runs'}"]
    code, err = cli(*args)
    assert code == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert lines and lines[0].startswith("error: log.csv row 1, column 'timestamp': 'yesterday' is not a number or an ISO 8601 date")


# ----------------------------------------------------------------------------- defect 8: FIFOs, NUL, formulas, formats


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_fifo_as_image_path_is_a_warning_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    Image.new("RGB", (8, 8), "red").save(tmp_path / "ok.png")
    write(tmp_path, "items.csv", "item_id,title,image_path\na,Alpha,ok.png\nb,Beta,pipe.png\n")
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", validate_files(tmp_path / "items.csv", None)), daemon=True)
    t.start()
    t.join(timeout=10)
    if t.is_alive():  # unblock the reader so the test process can end
        with open(tmp_path / "pipe.png", "wb"):
            pass
        pytest.fail("validate hung on a FIFO image_path")
    r = result["r"]
    assert r.errors == []
    assert "items.csv row 2, column 'image_path': 'pipe.png' is not a regular file" in "\n".join(r.warnings)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_fifo_as_the_data_file_is_an_error_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / "items.csv")
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", validate_files(tmp_path / "items.csv", None)), daemon=True)
    t.start()
    t.join(timeout=10)
    if t.is_alive():
        with open(tmp_path / "items.csv", "wb"):
            pass
        pytest.fail("validate hung on a FIFO data file")
    assert "items.csv: not a regular file" in one_line(result["r"].errors)


def test_nul_byte_in_a_title_is_an_error(tmp_path):
    r = check(tmp_path, items="item_id,title\na,Al\x00pha\nb,Beta\n", log=None)
    msg = one_line(r.errors)
    assert msg.startswith("items.csv line 2: contains a NUL byte") and "\x00" not in msg


def test_nul_in_jsonl_text_is_an_error_naming_row_and_column(tmp_path):
    r = validate_files(write(tmp_path, "items.jsonl", '{"item_id": "a", "title": "A", "text": "x\\u0000y"}\n'), None)
    assert one_line(r.errors).startswith("items.jsonl row 1, column 'text': contains a NUL byte")


def test_formula_cells_get_a_warning(tmp_path):
    items = "item_id,title,text\na,=cmd|' /C calc'!A0,ok\nb,Beta,@SUM(A1:A9)\nc,-5 degrees,fine\nd,+1,fine\n"
    r = check(tmp_path, items=items, log=None)
    assert r.errors == []
    w = "\n".join(r.warnings)
    assert "items.csv row 1, column 'title': '=cmd|' /C calc'!A0' looks like a spreadsheet formula" in w
    assert "items.csv row 2, column 'text'" in w
    assert "row 3" not in w and "row 4" not in w  # plain text and numbers are not formulas


def test_save_split_escapes_formulas_and_reads_back_the_same_ids(tmp_path):
    items = "item_id,title\n=1+2,A\n@x(1),B\n-3,C\nplain,D\n"
    log = "user_id,item_id,timestamp,rating\n=cmd|' /C calc'!A0,=1+2,1,5\n=cmd|' /C calc'!A0,@x(1),2,5\n" \
          "=cmd|' /C calc'!A0,-3,3,5\n=cmd|' /C calc'!A0,plain,4,5\n"
    ds = load_files(write(tmp_path, "items.csv", items), write(tmp_path, "log.csv", log))
    sp = make_split(ds, "B")
    d = sp.save(tmp_path / "split")
    raw = "".join((d / f"{n}.csv").read_text() for n in ("train", "valid", "test"))
    for line in raw.splitlines():
        for cell in line.split(","):
            assert not cell.lstrip('"').startswith(("=", "+", "@", "-")) or cell == "-3", line
    assert "'=1+2" in raw and ",-3," in raw  # escaped per OWASP; a plain negative number is left alone
    back = load_files(tmp_path / "items.csv", d / "train.csv")
    assert sorted(back.interactions.df["item_id"]) == sorted(sp.train["item_id"])
    assert set(back.interactions.df["user_id"]) == {"=cmd|' /C calc'!A0"}


@pytest.mark.parametrize("name", ["items.xlsx", "items", "items.dat"])
def test_unsupported_format_is_named(tmp_path, name):
    r = validate_files(write(tmp_path, name, b"PK\x03\x04 not a table"), None)
    assert one_line(r.errors) == (f"unsupported format: {tmp_path / name}; use CSV, TSV, Parquet, JSONL or RecBole atomic "
                                  "files (.csv, .tsv, .txt, .parquet, .jsonl, .ndjson, .json, .item, .inter, .user).")


def test_load_raises_the_ragged_row_error(tmp_path):
    with pytest.raises(DataError, match=r"items.csv row 1: 4 fields"):
        load_files(write(tmp_path, "items.csv", "item_id,title,year\ni1,Toy Story, The,1995\n"), write(tmp_path, "log.csv", LOG))


def test_many_ragged_rows_list_five_then_a_count(tmp_path):
    log = "user_id,item_id,timestamp\n" + "".join(f"u1,a,{100 + k},\n" for k in range(8))
    r = check(tmp_path, log=log)
    assert len(r.errors) == 6 and r.errors[4].startswith("log.csv row 5:")
    assert r.errors[5] == ("log.csv: 3 more rows with more fields than the header; give every row one value per column "
                           "(quote values that contain ',').")
