"""``recagent eval`` (offline comparison of recommenders) and ``recagent recommend`` (one user)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from recagent.cli.common import Run, common_options, run_option, table


@click.command("eval", help="Compare recommenders on a protocol of DESIGN.md (full ranking, seen items masked).\n\n"
               "\b\nExamples:\n  recagent eval --dataset ml-100k --protocol A --models pop,ease,fusion\n"
               "  recagent eval --protocol B --models all --report runs/report-B --json")
@click.option("--dataset", default=None, help="Built-in data set (ml-100k) or 'custom' (see data.items).")
@click.option("--protocol", type=click.Choice(["A", "B", "a", "b"]), default="A", show_default=True,
              help="A: ratings>=4, random 8:1:1; B: all ratings, leave-one-out by time.")
@click.option("--models", "models_text", default="all", show_default=True,
              help="Comma list of pop,itemknn,ease,bpr,sasrec,content,fusion (or 'all').")
@click.option("--save-recommendations", type=click.Path(dir_okay=False), default=None,
              help="Write JSON lines {user_id, items: top 100 original ids} per test user (fusion, else the best model).")
@click.option("--save-split", type=click.Path(file_okay=False), default=None, help="Write train/valid/test CSVs (original ids).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Write report.md + PNG plots + results.json here.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="A run folder for the trained models (default: the data set's folder under the runs folder).")
@run_option
@common_options
def eval_cmd(run: Run, dataset, protocol, models_text, save_recommendations, save_split, report_dir, run_dir, run_folder) -> None:
    from recagent.data import load_dataset, make_split
    from recagent.eval.runner import parse_models, run_eval
    from recagent.paths import atomic_write_text
    from recagent.runs import layout, record_run

    cfg = run.serve_run(run_folder)
    protocol = protocol.upper()
    models = parse_models(models_text)
    ds = load_dataset(cfg, dataset, log_fn=run.log)
    lay = layout(cfg, ds, run=run_dir)
    rd = lay.models(protocol)
    if save_split:
        make_split(ds, protocol, cfg.data).save(save_split)
        run.log(f"split written to {save_split}")
    res = run_eval(cfg, ds, protocol, models, lay, log=run.log)
    record_run(cfg, rd, f"recagent eval --protocol {protocol} --models {','.join(models)}")
    atomic_write_text(rd / "results.json", json.dumps(res.to_json(), indent=2, default=float))
    if save_recommendations:
        name = "fusion" if "fusion" in res.top else max(res.results, key=lambda m: res.results[m]["ndcg@10"])
        _write_recs(Path(save_recommendations), ds, res.per_user[name], res.top[name], _users(ds, protocol, cfg))
        run.log(f"{name} recommendations written to {save_recommendations}")
    if report_dir:
        from recagent.eval.report import write_report

        write_report(res, report_dir, f"{ds.name}, Protocol {protocol}")
        run.log(f"report written to {report_dir}/report.md")
    sel = res.fusion_selection
    out = {"protocol": protocol, "results": res.results, "best_baseline": res.best_baseline,
           "ci_vs_best_baseline": res.ci, "ablations": res.ablations, "fusion_serves": sel.get("served"),
           "fusion_selection_valid_ndcg@10": sel.get("valid_ndcg@10"), "timings_s": res.timings, "run_dir": str(rd)}
    cols = ["model", "ndcg@10", "recall@10", "mrr@10", "hit@10", "ndcg@20", "coverage@10"]
    rows = [{"model": m, **{c: f"{r.get(c, float('nan')):.4f}" for c in cols[1:]}} for m, r in res.results.items()]
    served = f"\nfusion serves: {sel['served']} (validation NDCG@10: {sel['valid_ndcg@10']})" if sel else ""
    run.emit(out, lambda d: table(rows, cols) + f"\nbest baseline (by valid NDCG@10): {res.best_baseline}; "
             f"models in {rd}" + served)


def _users(ds, protocol, cfg):
    from recagent.data import make_split

    return make_split(ds, protocol, cfg.data).users


def _write_recs(path: Path, ds, per_user, top, users) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = ds.item_ids
    with path.open("w", encoding="utf-8") as fh:
        for u, row in zip(users, top):
            fh.write(json.dumps({"user_id": str(ds.user_ids[u]), "items": [str(ids[i]) for i in row if i >= 0]}) + "\n")


@click.command("recommend", help="Top-K items for one known user, from a model saved by `recagent train` or "
               "`recagent eval` (trained now if missing or trained on other data).\n\n\b\nExample:\n"
               "  recagent recommend --dataset ml-100k --user 42 --k 10")
@click.option("--dataset", default=None, help="Built-in data set (ml-100k) or 'custom'.")
@click.option("--user", "user_id", required=True, help="Original user id.")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 1000), help="How many items.")
@click.option("--model", "model_name", default="ease", show_default=True,
              help="One of pop,itemknn,ease,bpr,sasrec,content,fusion (fusion trains every channel on first use).")
@click.option("--protocol", type=click.Choice(["A", "B", "a", "b"]), default="B", show_default=True,
              help="Which protocol's models to use (B: trained on all ratings).")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="A run folder (default: the data set's folder under the runs folder).")
@click.option("--no-train", is_flag=True, help="Fail instead of training a missing or out-of-date model.")
@click.option("--explain", is_flag=True, help="Add a grounded reason per item (the LLM, verified; templates with --set "
              "agent.explain_with_llm=false).")
@run_option
@common_options
def recommend_cmd(run: Run, dataset, user_id, k, model_name, protocol, run_dir, no_train, explain, run_folder) -> None:
    from recagent.data import load_dataset
    from recagent.errors import ConfigError
    from recagent.eval.runner import parse_models
    from recagent.ranking.base import History
    from recagent.ranking.train import load_or_train
    from recagent.runs import layout

    cfg = run.serve_run(run_folder)
    protocol = protocol.upper()
    if "," in model_name or model_name.strip().lower() == "all":
        raise ConfigError(f"--model {model_name!r}: recommend uses one model; pick one, e.g. --model "
                          f"{model_name.split(',')[0].strip() or 'ease'} (compare several with `recagent eval --models`).")
    model_name = parse_models(model_name)[0]
    ds = load_dataset(cfg, dataset, log_fn=run.log)
    if str(user_id) not in ds.user_index:
        raise ConfigError(f"--user {user_id}: unknown user in {ds.name}; user ids look like {ds.user_ids[0]!r}.")
    model = load_or_train(cfg, ds, protocol, [model_name], layout(cfg, ds, run=run_dir), run.log,
                          allow_train=not no_train, command=f"recagent recommend --model {model_name}")[model_name]
    u = ds.user_index[str(user_id)]
    full = History.from_frame(ds.encoded(), ds.n_users, ds.n_items)  # everything the user has seen
    ids, scores = model.recommend(np.array([u]), k, history=full, items=model.info.get("items") or None)
    items = [{"rank": r + 1, "item_id": str(ds.item_ids[i]), "title": ds.catalog.title(ds.item_ids[i]),
              "score": round(float(s), 4)} for r, (i, s) in enumerate(zip(ids[0], scores[0])) if np.isfinite(s)]
    columns = ["rank", "item_id", "title", "score"]
    if explain:
        from recagent.agent.service import explain_for_user

        run.log(f"explaining {len(items)} items for user {user_id} ...")
        reasons = explain_for_user(cfg, ds, str(user_id), [it["item_id"] for it in items], channel="cf")
        for it, r in zip(items, reasons):
            it["reason"] = r["reason"]
        columns.append("reason")
    run.emit({"user_id": str(user_id), "model": model_name, "items": items},
             lambda d: table(d["items"], columns))


import numpy as np  # noqa: E402  (light; used by recommend)

eval_cmd.name = "eval"
COMMANDS = [eval_cmd, recommend_cmd]
