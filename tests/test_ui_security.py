"""The chat server's exposure (issue 9): it serves only image thumbnails, never the data folder
(probed over real HTTP against a served custom catalog with images); who may chat as a known
user and what the user list shows; where the password comes from; throttled failed logins;
``chat --dataset ml-100k`` beside an ``ml-100k/`` folder; ``./run``'s chromium message."""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from recagent.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

# A small bakery catalog (not movies) with a users file, a dotfile, a sub-folder and an image
# outside the catalog's folder: everything the server must NOT serve sits beside the images.
ITEMS = """item_id,title,categories,image_path
b1,Sourdough Loaf,Bread,img/b1.png
b2,Rye Bread,Bread,img/b2.png
b3,Croissant,Pastry|Breakfast,b3.png
b4,Cinnamon Roll,Pastry|Breakfast,
b5,Baguette,Bread,../outside/o.png
b6,Apple Pie,Pastry|Dessert,
"""
LOG = "user_id,item_id,timestamp,rating\n" + "".join(
    f"c{u},b{1 + (u + j) % 6},{1000 + 10 * u + j},{4 + (u + j) % 2}\n" for u in range(6) for j in range(3))
USERS = "user_id,age,occupation,postcode\n" + "".join(f"c{u},{30 + u},baker-secret-{u},SW{u}A\n" for u in range(6))


@pytest.fixture(scope="module")
def bakery(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("bakery")
    d = root / "shop"
    (d / "img").mkdir(parents=True)
    (d / "private").mkdir()
    (root / "outside").mkdir()
    for i, rgb in (("b1", (200, 120, 40)), ("b2", (90, 60, 30))):
        Image.new("RGB", (80, 60), rgb).save(d / "img" / f"{i}.png")
    Image.new("RGB", (80, 60), (240, 200, 90)).save(d / "b3.png")  # beside users.csv, as people do
    Image.new("RGB", (80, 60), (10, 10, 10)).save(root / "outside" / "o.png")
    (root / "outside" / "notes.txt").write_text("outside secret", encoding="utf-8")
    (d / "items.csv").write_text(ITEMS, encoding="utf-8")
    (d / "log.csv").write_text(LOG, encoding="utf-8")
    (d / "users.csv").write_text(USERS, encoding="utf-8")
    (d / ".env").write_text("TOKEN=hunter2\n", encoding="utf-8")
    (d / "private" / "notes.txt").write_text("sub-folder secret", encoding="utf-8")
    (d / "img" / "readme.txt").write_text("next to the images", encoding="utf-8")
    return d


def _load(d: Path, outside: bool = False):
    from recagent.data import load_files
    from recagent.data.loaders import ReadOptions

    opts = ReadOptions(allow_outside_images=True) if outside else ReadOptions()
    return load_files(d / "items.csv", d / "log.csv", d / "users.csv", opts, name="bakery")


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _file_url(base: str, path: Path | str) -> str:
    return f"{base}/gradio_api/file={urllib.parse.quote(str(path))}"


@pytest.mark.server
def test_server_serves_thumbnails_never_the_data_folder(cfg, bakery, tmp_path):
    """Regression (issue 9, defect 1): the folder of every image was an allowed path, so
    users.csv, the log, dotfiles, sub-folders and ../outside/ were served."""
    from gradio_client import Client

    from fakes import FakeBackend
    from recagent.ui.media import Thumbnails
    from recagent.ui.serve import free_port, launch

    ds = _load(bakery, outside=True)  # even when the operator allows images outside the folder
    srv = launch(FakeBackend(ds, k=6, thumbs=Thumbnails(tmp_path / "thumbs")), cfg, port=free_port(), block=False)
    try:
        out = Client(srv.url, verbose=False).predict("bread and pastry", api_name="/chat")
        thumbs = [c["image_path"] for c in out["cards"] if c["image_path"]]
        assert len(thumbs) == 4, out["cards"]  # b1, b2, b3 and the outside b5
        for t in thumbs:
            assert Path(t).parent == (tmp_path / "thumbs").resolve()
            status, body = _get(_file_url(srv.url, t))
            assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n", t
        private = [bakery / "users.csv", bakery / "log.csv", bakery / "items.csv", bakery / ".env",
                   bakery / "private" / "notes.txt", bakery / "img" / "readme.txt", bakery / "img" / "b1.png", bakery / "b3.png",
                   bakery / ".." / "outside" / "o.png", bakery.parent / "outside" / "notes.txt",
                   bakery.parent / "outside" / "o.png", Path("/etc/passwd")]
        for p in private:
            status, body = _get(_file_url(srv.url, p))
            assert status in (403, 404), f"{p} served with {status}: {body[:60]!r}"
        assert srv.backend.media_dirs == [str((tmp_path / "thumbs").resolve())]
    finally:
        srv.close()


def test_image_outside_the_catalog_folder_is_a_warning_unless_allowed(bakery):
    ds = _load(bakery)
    paths = ds.catalog.items.set_index("item_id")["image_path"]
    assert paths["b1"] and Path(paths["b1"]).is_file()
    assert paths["b5"] is None or paths["b5"] != paths["b5"], "kept text-only"
    assert any("b5" in w or "outside" in w for w in ds.warnings), ds.warnings
    allowed = _load(bakery, outside=True).catalog.items.set_index("item_id")["image_path"]
    assert allowed["b5"] and Path(allowed["b5"]).name == "o.png"


def test_thumbnails_are_small_copies_and_skip_non_files(tmp_path):
    from PIL import Image

    from recagent.ui.media import Thumbnails

    src = tmp_path / "big.png"
    Image.new("RGB", (2000, 1000), (1, 2, 3)).save(src)
    th = Thumbnails(tmp_path / "t")
    out = th.get(str(src))
    assert out and Path(out).parent == (tmp_path / "t").resolve() and th.get(str(src)) == out
    with Image.open(out) as im:
        assert max(im.size) <= 420
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert th.get(str(fifo)) is None, "a FIFO is never opened (it would block)"
    assert th.get(str(tmp_path / "missing.png")) is None and th.get(None) is None
    (tmp_path / "bad.png").write_text("not an image", encoding="utf-8")
    assert th.get(str(tmp_path / "bad.png")) is None
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [Path(out).name], "the folder holds only thumbnails"


# -- who may chat as whom, and what the user list shows (defect 9) ---------------------------

def _agent_backend(ds, **kw):
    from recagent.agent.agent import Agent
    from recagent.agent.ranker import SimpleRanker
    from recagent.ui.agent_backend import AgentBackend

    return AgentBackend(Agent(ds, llm=None, ranker=SimpleRanker(ds)), ds, **kw)


def test_user_list_shows_ids_only_unless_attributes_are_turned_on(bakery):
    ds = _load(bakery)
    labels = dict(_agent_backend(ds).users())
    assert set(labels) == {f"c{u}" for u in range(6)}
    assert not any("baker-secret" in v or "SW" in v for v in labels.values()), labels
    with_attrs = dict(_agent_backend(ds, user_attributes=True).users())
    assert "baker-secret-0" in with_attrs["c0"]


@pytest.mark.server
def test_known_users_are_off_by_default(cfg, bakery):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from fakes import FakeBackend
    from recagent.ui.serve import free_port, launch

    be = FakeBackend(_load(bakery))
    srv = launch(be, cfg, port=free_port(), block=False)
    try:
        c = Client(srv.url, verbose=False)
        assert c.predict(api_name="/users") == []
        with pytest.raises(AppError, match="known user is off"):
            c.predict("c1", api_name="/start")
        assert c.predict("", api_name="/start")["user"] == "__new__"
    finally:
        srv.close()
    srv = launch(be, cfg, port=free_port(), block=False, known_users=True)
    try:
        c = Client(srv.url, verbose=False)
        assert {u for u, _ in c.predict(api_name="/users")} == {f"c{u}" for u in range(6)}
        assert c.predict("c1", api_name="/start")["user"] == "c1"
    finally:
        srv.close()


def test_web_ui_user_needs_known_users(cfg):
    from recagent.ui.serve import serve

    with pytest.raises(ConfigError, match="--known-users"):
        serve(cfg, "ml-100k", user="1", block=False)  # refused before any backend is built


# -- the password (defect 9) ------------------------------------------------------------------

def test_auth_from_file_or_environment(tmp_path):
    from recagent.ui.auth import AUTH_ENV, resolve_auth

    f = tmp_path / "auth"
    f.write_text("alice:s3cret\n", encoding="utf-8")
    assert resolve_auth(None, f, environ={}) == "alice:s3cret"
    assert resolve_auth(None, None, environ={AUTH_ENV: "bob:pw"}) == "bob:pw"
    assert resolve_auth("carol:x", f, environ={AUTH_ENV: "bob:pw"}) == "carol:x"
    assert resolve_auth(None, None, environ={}) is None
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="empty"):
        resolve_auth(None, tmp_path / "empty", environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_auth(None, tmp_path / "nope", environ={})
    (tmp_path / "bad").write_text("nocolon\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="USER:PASS"):
        resolve_auth(None, tmp_path / "bad", environ={})


def test_chat_cli_takes_auth_file_and_env_and_keeps_it_out_of_argv(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from recagent.cli import cli
    from recagent.ui import serve as serve_mod

    seen = {}
    monkeypatch.setattr(serve_mod, "make_backend", lambda cfg, **kw: seen.setdefault("backend", kw))
    monkeypatch.setattr(serve_mod, "launch", lambda be, cfg, **kw: seen.setdefault("launch", kw))
    f = tmp_path / "auth"
    f.write_text("alice:s3cret\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["chat", "--host", "0.0.0.0", "--auth-file", str(f)], env={"RECAGENT_AUTH": ""})
    assert r.exit_code == 0, r.output
    assert seen["launch"]["auth"] == "alice:s3cret"
    seen.clear()
    r = CliRunner().invoke(cli, ["chat", "--host", "0.0.0.0"], env={"RECAGENT_AUTH": "bob:pw"})
    assert r.exit_code == 0, r.output
    assert seen["launch"]["auth"] == "bob:pw"
    r = CliRunner().invoke(cli, ["chat", "--host", "0.0.0.0"], env={"RECAGENT_AUTH": ""})
    assert isinstance(r.exception, ConfigError) and "--auth" in str(r.exception)


def test_chat_dataset_name_is_not_read_as_a_folder(tmp_path, monkeypatch):
    """Regression (issue 9, defect 8): an ``ml-100k/`` folder in the current directory (what the
    GroupLens zip extracts to) made ``chat --dataset ml-100k`` serve it as a run folder."""
    from click.testing import CliRunner

    from recagent.cli import cli
    from recagent.ui import serve as serve_mod

    seen = {}
    monkeypatch.setattr(serve_mod, "make_backend", lambda cfg, **kw: seen.setdefault("backend", kw))
    monkeypatch.setattr(serve_mod, "launch", lambda be, cfg, **kw: None)
    (tmp_path / "ml-100k").mkdir()
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["chat", "--dataset", "ml-100k"])
    assert r.exit_code == 0, r.output
    assert seen["backend"]["dataset"] == "ml-100k" and seen["backend"]["run"] is None


def test_failed_logins_back_off_per_user_and_address():
    from recagent.ui.auth import CLIENT, LoginThrottle

    now = [100.0]
    t = LoginThrottle(("alice", "s3cret"), free=3, clock=lambda: now[0])
    token = CLIENT.set("10.0.0.1")
    try:
        assert t("alice", "s3cret")
        for _ in range(3):
            assert not t("alice", "guess")
        assert t.wait_s("alice", "10.0.0.1") == 0.0, "three free failures"
        assert not t("alice", "guess")          # 4th failure: 1 s backoff
        assert not t("alice", "s3cret"), "the right password is refused during the backoff"
        now[0] += 1.01
        assert not t("alice", "guess")          # 5th: 2 s
        assert t.wait_s("alice", "10.0.0.1") == pytest.approx(2.0)
        for _ in range(20):
            now[0] += 1000
            t("alice", "guess")
        assert t.wait_s("alice", "10.0.0.1") == pytest.approx(300.0), "capped at 5 minutes"
        now[0] += 301
        assert t("alice", "s3cret") and t.wait_s("alice", "10.0.0.1") == 0.0, "success clears the count"
    finally:
        CLIENT.reset(token)
    # another address guessing other names is throttled by its address
    token = CLIENT.set("10.0.0.2")
    try:
        for j in range(4):
            t(f"user{j}", "x")
        assert t.wait_s("nobody", "10.0.0.2") > 0 and t.wait_s("alice", "10.0.0.1") == 0.0
    finally:
        CLIENT.reset(token)


@pytest.mark.server
def test_login_is_throttled_over_http(cfg, ml100k):
    import json

    from fakes import FakeBackend
    from recagent.ui.serve import free_port, launch

    srv = launch(FakeBackend(ml100k), cfg, port=free_port(), block=False, auth="alice:s3cret")

    def login(user, pw):
        data = urllib.parse.urlencode({"username": user, "password": pw}).encode()
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{srv.url}/login", data=data), timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        assert _get(f"{srv.url}/config")[0] in (401, 403) or b"auth_required" in _get(f"{srv.url}/config")[1]
        assert _get(_file_url(srv.url, srv.backend.media_dirs[0] + "/x.png"))[0] == 401, "files need the login too"
        assert login("alice", "s3cret") == 200
        for _ in range(cfg.ui.login_attempts + 1):
            assert login("alice", "wrong") == 400
        assert login("alice", "s3cret") == 400, "the right password waits out the backoff"
        assert json.loads(_get(f"{srv.url}/config")[1] or b"{}").get("auth_required", True)
    finally:
        srv.close()


# -- ./run (defect 8) ---------------------------------------------------------------------------

def test_run_script_goes_on_when_chromium_cannot_be_installed(tmp_path):
    """Regression: ``./run`` logged "the browser tests will fail" and then ``set -e`` stopped it."""
    text = (REPO / "run").read_text(encoding="utf-8")
    start = text.index("ensure_chromium() {")
    func = text[start:text.index("\n}\n", start) + 3]
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, body in (("apt-get", "exit 100"), ("id", "echo 0"), ("sudo", "exit 1")):
        (fake / name).write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        (fake / name).chmod(0o755)
    script = ("set -euo pipefail\nlog() { printf '[run] %s\\n' \"$*\" >&2; }\n" + func +
              "ensure_chromium\necho went-on\n")
    r = subprocess.run(["/bin/bash", "-c", script], env={"PATH": str(fake)}, capture_output=True, text=True,
                       timeout=30)
    assert "went-on" in r.stdout and r.returncode == 0, (r.stdout, r.stderr)
    assert "could not install chromium" in r.stderr
