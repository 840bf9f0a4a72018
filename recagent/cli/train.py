"""``recagent train``: fit and save the recommenders of one protocol (the training home,
``recagent.ranking.train``); later commands load them while the data is unchanged."""

from __future__ import annotations

import click

from recagent.cli.common import Run, common_options, run_option, table


@click.command("train", help="Train (or reuse, when the data is unchanged) the recommenders of one protocol and save "
               "them under the data set's run folder.\n\n\b\nExamples:\n"
               "  recagent train --dataset ml-100k --protocol B --models fusion\n"
               "  recagent train --dataset custom --set data.items=items.csv --set data.interactions=log.csv")
@click.option("--dataset", default=None, help="Built-in data set (ml-100k) or 'custom' (see data.items).")
@click.option("--protocol", type=click.Choice(["A", "B", "a", "b"]), default="B", show_default=True,
              help="A: ratings>=4, random 8:1:1; B: all ratings, leave-one-out by time (what the chat uses).")
@click.option("--models", "models_text", default="fusion", show_default=True,
              help="Comma list of models (see `recagent eval --help`) or 'all'.")
@click.option("--force", is_flag=True, help="Retrain even when saved models match the data.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="A run folder to train into (default: the data set's folder under the runs folder).")
@run_option
@common_options
def train_cmd(run: Run, dataset, protocol, models_text, force, run_dir, run_folder) -> None:
    from recagent.data import load_dataset
    from recagent.eval.runner import parse_models
    from recagent.ranking.train import load_or_train, train
    from recagent.runs import layout

    cfg = run.serve_run(run_folder)
    protocol = protocol.upper()
    models = parse_models(models_text)
    ds = load_dataset(cfg, dataset, log_fn=run.log)
    lay = layout(cfg, ds, run=run_dir)
    if force:
        fitted = train(cfg, ds, protocol, models, lay, run.log, command="recagent train --force").models
    else:
        fitted = load_or_train(cfg, ds, protocol, models, lay, run.log, command="recagent train")
    rows = [{"model": n, "valid_ndcg@10": fitted[n].info.get("valid_ndcg@10", ""), "folder": str(lay.model(protocol, n))}
            for n in models]
    run.emit({"dataset": ds.name, "protocol": protocol, "models": rows}, lambda d: table(rows, ["model", "valid_ndcg@10", "folder"]))


train_cmd.name = "train"
COMMANDS = [train_cmd]
