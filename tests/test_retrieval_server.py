"""ItemIndex against a real Chroma server (`chroma run` on 127.0.0.1), the path past one machine."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from recagent.config import load_config
from recagent.errors import IndexError_
from recagent.retrieval import HashEncoder, ItemIndex

pytestmark = pytest.mark.server

CHROMA = Path(sys.executable).parent / "chroma"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_url(tmp_path):
    if not CHROMA.exists():
        pytest.skip(f"{CHROMA} not installed")
    port = _free_port()
    log = open(tmp_path / "chroma.log", "wb")
    proc = subprocess.Popen([str(CHROMA), "run", "--host", "127.0.0.1", "--port", str(port), "--path",
                             str(tmp_path / "server-data")], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma server did not start: {(tmp_path / 'chroma.log').read_text(errors='replace')[-500:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_server_mode_builds_queries_and_resumes(tiny, tmp_path, chroma_url):
    cfg = load_config(overrides=[f"paths.runs_dir={tmp_path / 'runs'}", f"retrieval.chroma_url={chroma_url}"])
    index = ItemIndex.open(cfg, "tiny", text_encoder=HashEncoder(64), clip_encoder=None)
    assert index.location == chroma_url
    report = index.build(tiny)
    assert report.channels["text"]["total"] == 8
    hits = index.query_text("haunted house ghost", k=2)
    assert {h.item_id for h in hits} == {"i5", "i6"}
    assert {h.item_id for h in index.query_text("robots", k=8, exclude_categories=["Sci-Fi"], year_min=1990)} == {"i3", "i4", "i6", "i8"}
    # a second client (another process or machine) sees the same index; nothing is re-embedded
    again = ItemIndex.open(cfg, "tiny", text_encoder=HashEncoder(64), clip_encoder=None)
    assert again.build(tiny).channels["text"]["unchanged"] == 8
    # nothing was written to the embedded store
    assert not (tmp_path / "runs" / "tiny" / "index").exists()


def test_unreachable_server_is_a_one_line_error(tmp_path):
    cfg = load_config(overrides=[f"paths.runs_dir={tmp_path}"])
    with pytest.raises(IndexError_, match="cannot reach Chroma"):
        ItemIndex.open(cfg, "tiny", chroma_url=f"http://127.0.0.1:{_free_port()}", text_encoder=HashEncoder(64))
