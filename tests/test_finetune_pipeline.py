"""`recagent finetune`: bad logs stop before training and change nothing; stages, markers, resume;
the Done-when run on a tiny recipe domain (kill in the LoRA stage, resume, chat with the run)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RECIPES = """item_id,title,text,categories,year
r1,Lemon Tart,A sharp lemon custard in a butter crust,Dessert|French,2001
r2,Chocolate Mousse,Airy dark chocolate mousse,Dessert|French,1998
r3,Pad Thai,Rice noodles with tamarind and peanuts,Noodles|Thai,2010
r4,Green Curry,Coconut curry with basil,Curry|Thai,2012
r5,Ramen Bowl,Pork broth noodles with egg,Noodles|Japanese,2015
r6,Miso Soup,Light soup with tofu and seaweed,Soup|Japanese,2003
r7,Onion Soup,Slow onions under a cheese crust,Soup|French,1995
r8,Mango Sticky Rice,Sweet rice with mango,Dessert|Thai,2008
r9,Katsu Curry,Crisp cutlet with a mild curry,Curry|Japanese,2011
r10,Creme Brulee,Burnt sugar over vanilla custard,Dessert|French,1999
r11,Tom Yum,Hot and sour prawn soup,Soup|Thai,2007
r12,Udon Stir Fry,Thick noodles with greens,Noodles|Japanese,2014
"""
FRENCH, ASIAN = ["r1", "r2", "r7", "r10", "r6"], ["r3", "r4", "r5", "r8", "r9", "r11", "r12"]


def write_domain(d: Path) -> dict[str, Path]:
    """12 recipes, 16 cooks with clear tastes (French vs Thai/Japanese), 6-7 ratings each."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "recipes.csv").write_text(RECIPES, encoding="utf-8")
    rows = ["user_id,item_id,timestamp,rating"]
    for u in range(16):
        fav = FRENCH if u % 2 else ASIAN
        other = ASIAN if u % 2 else FRENCH
        seq = [fav[u % len(fav)], other[u % len(other)]] + [fav[(u + j) % len(fav)] for j in range(1, 5)]
        for j, it in enumerate(dict.fromkeys(seq)):
            rows.append(f"cook{u},{it},{1_600_000_000 + 1000 * u + j},{2 if it in other else 5}")
    (d / "cooked.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {"items": d / "recipes.csv", "interactions": d / "cooked.csv"}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case,expect", [
    ("unknown_items", "no interaction|not in the catalog"),
    ("empty", "empty|no rows|no interactions"),
    ("wrong_columns", "column"),
    ("no_titles", "title"),
])
def test_bad_logs_stop_before_training_and_change_nothing(tmp_path, cfg, case, expect):
    from recagent.errors import RecagentError
    from recagent.finetune.pipeline import finetune

    files = write_domain(tmp_path / "data")
    if case == "unknown_items":
        files["interactions"].write_text("user_id,item_id,timestamp,rating\nu1,zz1,1,5\nu2,zz2,2,4\n", encoding="utf-8")
    elif case == "empty":
        files["interactions"].write_text("", encoding="utf-8")
    elif case == "wrong_columns":
        files["interactions"].write_text("person,thing,when\nu1,r1,1\n", encoding="utf-8")
    else:
        files["items"].write_text("item_id,text\nr1,soup\nr2,tart\n", encoding="utf-8")
    out = tmp_path / "runs" / "existing"
    out.mkdir(parents=True)
    (out / "stages").mkdir()
    (out / "stages" / "validate.json").write_text("{}", encoding="utf-8")
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    before = snapshot(out)
    with pytest.raises(RecagentError) as err:
        finetune(cfg, out, items=str(files["items"]), interactions=str(files["interactions"]), resume=True, quiet=True)
    msg = str(err.value)
    assert "\n" not in msg and re.search(expect, msg, re.IGNORECASE), msg
    assert snapshot(out) == before
    fresh = tmp_path / "runs" / "fresh"
    with pytest.raises(RecagentError):
        finetune(cfg, fresh, items=str(files["items"]), interactions=str(files["interactions"]), quiet=True)
    assert not fresh.exists()


def test_an_existing_run_is_continued_only_with_resume(tmp_path, cfg):
    from recagent.finetune.pipeline import RunFolderError, finetune

    files = write_domain(tmp_path / "data")
    out = tmp_path / "run"
    (out / "stages").mkdir(parents=True)
    (out / "stages" / "validate.json").write_text("{}", encoding="utf-8")
    with pytest.raises(RunFolderError, match="--resume"):
        finetune(cfg, out, items=str(files["items"]), interactions=str(files["interactions"]), quiet=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(RunFolderError, match="not a finetune run"):
        finetune(cfg, other, items=str(files["items"]), interactions=str(files["interactions"]), resume=True, quiet=True)


@pytest.mark.slow  # trains the rankers of a 12-item domain: ~15 s on 2 busy cores
def test_stages_write_markers_and_rerun_skips_them(tmp_path, cfg):
    from recagent.finetune.pipeline import finetune, stage_status
    from recagent.retrieval.encoders import HashEncoder

    files = write_domain(tmp_path / "data")
    out = tmp_path / "run"
    c = cfg.replace("finetune", max_examples=20, heldout_users=2, reason_sample_sheets=0)
    done = finetune(c, out, items=str(files["items"]), interactions=str(files["interactions"]), quiet=True,
                    text_encoder=HashEncoder(dim=32), stop_after="llm_data")
    assert list(done) == ["validate", "index", "rankers", "clip", "llm_data"]
    assert done["validate"]["item_noun"] == "recipe" and done["clip"].get("skipped")  # named by recipes.csv
    st = stage_status(out)
    assert st["llm_data"] and not st["lora"]
    assert (out / "config.toml").is_file() and (out / "data.json").is_file()
    mtime = (out / "stages" / "index.json").stat().st_mtime_ns
    again = finetune(c, out, resume=True, quiet=True, text_encoder=HashEncoder(dim=32), stop_after="llm_data")
    assert again["index"] == done["index"] and (out / "stages" / "index.json").stat().st_mtime_ns == mtime


KILLER = """
import sys, time
import recagent.finetune.lora as lora
save = lora.save_checkpoint
def save_then_wait(*a, **k):  # the test kills this process while it waits here
    save(*a, **k)
    time.sleep(600)
lora.save_checkpoint = save_then_wait
from recagent.cli import main
main(sys.argv[1:])
"""


def _tiny_run_sets(cfg, llama) -> list[str]:
    """Settings of a finetune run small enough for a test (a tiny Llama, a few examples)."""
    return [f"paths.cache_dir={cfg.paths.cache}", f"models.llm={llama}", "finetune.max_examples=24",
            "finetune.heldout_users=3", "finetune.reason_sample_sheets=2", "finetune.reason_candidates=2",
            "finetune.batch_size=4", "finetune.checkpoint_every=2", "finetune.eval_pairs=6", "finetune.eval_users=3",
            "finetune.max_seq_len=256", "finetune.lora_r=4", "agent.explain_max_new_tokens=12",
            "agent.profile_max_new_tokens=12", "ranking.fusion_epochs=2" if "fusion_epochs" in cfg.to_dict()["ranking"] else
            "agent.k=5"]


@pytest.mark.slow  # torchrun, two processes: the data stages once, LoRA in both, eval + report once (~1-2 min)
def test_under_a_multi_process_launcher_every_process_trains_the_lora(tmp_path, cfg):
    """What `accelerate launch` does on GPUs, on this CPU (gloo): the first process runs the
    stages, the second waits for them and joins the LoRA stage; one adapter, one report."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_finetune_lora import make_tiny_llama

    files = write_domain(tmp_path / "data")
    out = tmp_path / "runs" / "recipes"
    sets = _tiny_run_sets(cfg, make_tiny_llama(tmp_path / "llama", cfg.paths.cache))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "ACCELERATE_USE_CPU": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "recagent", "finetune", "--items", str(files["items"]), "--interactions",
                          str(files["interactions"]), "--out", str(out), "--steps", "4"]
                         + [x for s in sets for x in ("--set", s)], env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "process 1 of 2: waiting" in res.stderr, res.stderr[-2000:]
    lora = json.loads((out / "stages" / "lora.json").read_text())
    assert lora["processes"] == 2 and lora["trained_steps"] == 4
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "report" / "report.md").is_file()
    # without ACCELERATE_USE_CPU, accelerate runs each CPU process alone: refused, not two runs over each other
    env.pop("ACCELERATE_USE_CPU")
    bad = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "recagent", "finetune", "--out", str(tmp_path / "runs" / "again"), "--items",
                          str(files["items"]), "--interactions", str(files["interactions"]), "--steps", "4"]
                         + [x for s in sets for x in ("--set", s)], env=env, capture_output=True, text=True, timeout=900)
    assert bad.returncode != 0 and "ACCELERATE_USE_CPU=1" in bad.stderr, bad.stderr[-2000:]


@pytest.mark.slow  # two CLI processes (index, rankers, LoRA on a tiny Llama, eval): ~1-3 min on 2 busy cores
def test_done_when_tiny_recipe_domain_killed_in_lora_resumes_and_chats(tmp_path, cfg):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_finetune_lora import make_tiny_llama

    files = write_domain(tmp_path / "data")
    llama = make_tiny_llama(tmp_path / "llama", cfg.paths.cache)
    out = tmp_path / "runs" / "recipes"
    sets = _tiny_run_sets(cfg, llama)
    args = ["finetune", "--items", str(files["items"]), "--interactions", str(files["interactions"]), "--out", str(out),
            "--steps", "6", "--quiet"] + [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    (tmp_path / "killer.py").write_text(KILLER, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(tmp_path / "killer.py")] + args, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = out / "checkpoints" / "last" / "state.json"
    deadline = time.time() + 500
    while not state.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert state.is_file(), proc.communicate(timeout=5) if proc.poll() is not None else "no checkpoint in time"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(state.read_text())["step"] == 2
    assert not (out / "stages" / "lora.json").exists() and (out / "stages" / "llm_data.json").exists()
    res = subprocess.run([sys.executable, "-m", "recagent", "finetune", "--out", str(out), "--resume", "--steps", "6",
                          "--json"] + [x for s in sets for x in ("--set", s)], env=env, capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    stages = json.loads(res.stdout)["stages"]
    assert stages["lora"]["resumed_from"] == 2 and stages["lora"]["trained_steps"] == 6
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "merged" / "config.json").is_file()
    assert (out / "report" / "report.md").is_file() and (out / "eval.json").is_file()
    ev = json.loads((out / "eval.json").read_text())
    assert ev["profiles"]["users"] > 0 and ev["reasons"]["adapter"]["pairs"] > 0
    assert ev["reasons"]["adapter"]["after_verification"]["false_claim"] == 0
    # chat with the run: its catalog, its adapter; reasons name only recipes, never movies
    from recagent.agent.service import build_agent
    from recagent.data import load_dataset
    from recagent.finetune.pipeline import run_config

    rc = run_config(cfg, out)
    assert rc.models.llm.endswith("merged") and rc.data.dataset == "custom"
    ds = load_dataset(rc)
    agent = build_agent(rc, ds)
    assert "merged" in agent.llm.name + str(getattr(agent.llm, "path", "")), agent.llm.name
    titles = set(ds.catalog.items["title"])
    session = agent.new_session()
    for msg in ["something Thai with noodles", "I liked Pad Thai, more like it", "a French dessert"]:
        reply = agent.respond(session, msg)
        assert reply.items and "movie" not in reply.text.lower() and "film" not in reply.text.lower()
        for it in reply.items:
            assert it.title in titles
            named = {ds.catalog.items["title"].iloc[r] for r in agent.verifier.named_items(it.reason)}
            assert named <= titles, it.reason
    # the CLI serves the run too: `chat --cli --run`, `recommend --run` with the run's own trained
    # fusion model (--no-train: nothing is retrained elsewhere) and `eval --run`
    user = ds.user_ids[0]
    for argv, stdin in [(["chat", "--cli", "--run", str(out), "--json", "--quiet"], "something Thai with noodles\n"),
                        (["recommend", "--run", str(out), "--user", str(user), "--model", "fusion", "--k", "3",
                          "--no-train", "--json"], None),
                        (["eval", "--run", str(out), "--protocol", "B", "--models", "pop", "--json"], None)]:
        res = subprocess.run([sys.executable, "-m", "recagent", *argv, "--set", f"paths.cache_dir={cfg.paths.cache}"],
                             input=stdin, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, (argv[0], res.stderr[-2000:])
        got = json.loads(res.stdout.strip().splitlines()[-1])
        if argv[0] != "eval":
            assert got["items"] and {it["title"] for it in got["items"]} <= titles, got


def test_report_metrics_by_hand():
    import numpy as np

    from recagent.finetune.report import distinct_n, problem_kind, recall_at

    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.0])
    # top-2 after excluding item 0 = {1, 2}; relevant {2, 4}: 1 of 2
    assert recall_at(scores, [0], [2, 4], k=2) == 0.5
    assert recall_at(scores, [], [], k=2) == 0.0
    # "a b a b" has bigrams ab, ba, ab -> 2 distinct of 3
    assert distinct_n(["a b a b"]) == 2 / 3 and distinct_n([]) == 0.0
    assert problem_kind(["claims 'you liked', but the user has liked nothing yet", "gives 'X' as its own reason",
                         "fragment: 'X.' has no verb", "says 1999"]) == {"false_claim", "self_reference", "fragment"}
