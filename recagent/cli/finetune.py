"""``recagent finetune`` (the whole-domain pipeline) and ``recagent finetune clip``."""

from __future__ import annotations

import click

from recagent.cli.common import Run, common_options

HELP = """Fine-tune recagent on a domain: one command runs every stage into a run folder.

\b
Whole domain (stages: validate, index, rankers, clip, llm_data, lora, eval, report):
  recagent finetune --items items.csv --interactions log.csv --out runs/books
  recagent finetune --dataset ml-100k --out runs/ml --steps 50      a quick LoRA
  recagent finetune --out runs/books --resume      continue a killed run (LoRA from its checkpoint)
  recagent chat --run runs/books                   chat with that run's catalog, rankers and adapter

\b
Stages (subcommands):
  recagent finetune clip --dataset fashion-mnist      train CLIP on the catalog's (image, text) pairs
  recagent finetune clip --dataset fashion-mnist --resume     continue an interrupted run
"""


@click.group("finetune", help=HELP, invoke_without_command=True)
@click.option("--items", type=click.Path(dir_okay=False), help="Catalog: item_id, title[, text, categories, year, image_path].")
@click.option("--interactions", type=click.Path(dir_okay=False), help="Log: user_id, item_id, timestamp[, rating].")
@click.option("--users", type=click.Path(dir_okay=False), help="User attributes (optional).")
@click.option("--images", type=click.Path(file_okay=False), help="Folder of the catalog's images (CLIP stage).")
@click.option("--dataset", default=None, help="A built-in data set instead of files, e.g. ml-100k.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="The run folder, e.g. runs/books.")
@click.option("--steps", type=int, default=None, help="LoRA optimizer steps (a quick run); default finetune.steps / epochs.")
@click.option("--resume", is_flag=True, help="Continue the run in --out: finished stages are skipped, LoRA resumes.")
@common_options
@click.pass_context
def finetune_group(ctx: click.Context, run: Run, items, interactions, users, images, dataset, out_dir, steps,
                   resume) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if out_dir is None:
        if items or interactions or dataset or resume:
            raise click.UsageError("finetune needs --out runs/NAME (the run folder).")
        click.echo(ctx.get_help())
        return
    from recagent.finetune.pipeline import finetune

    done = finetune(run.config, out_dir, dataset=dataset, items=items, interactions=interactions, users=users, images=images,
                    steps=steps, resume=resume, quiet=run.quiet or run.json, log_fn=run.log)
    run.emit({"out": out_dir, "stages": done}, lambda d: _render(d))


def _render(d: dict) -> str:
    lines = [f"finetune run {d['out']}:"]
    for name, info in d["stages"].items():
        extra = info.get("skipped") or ""
        lines.append(f"  {name:<9} {info.get('seconds', 0):>7.1f} s  {extra}")
    lines.append(f"report: {d['out']}/report/report.md; chat with it: recagent chat --run {d['out']}")
    return "\n".join(lines)


@finetune_group.command("clip", help="Train CLIP (a small ViT from scratch + the cached MiniLM text tower) on a "
                        "catalog's images and texts; writes a checkpoint the image index and chat load.\n\n"
                        "\b\nExamples:\n  recagent finetune clip --dataset fashion-mnist\n"
                        "  recagent finetune clip --items items.csv --interactions log.csv --epochs 5\n"
                        "  recagent finetune clip --dataset fashion-mnist --resume\n"
                        "  recagent finetune clip --items items.csv --interactions log.csv --init my_clip.pt")
@click.option("--dataset", default=None, help="Data set name (default: data.dataset).")
@click.option("--items", type=click.Path(dir_okay=False), help="Catalog file of a custom data set (with image_path).")
@click.option("--interactions", type=click.Path(dir_okay=False), help="Interaction log of a custom data set.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: the data set's clip/ folder under the runs dir, which chat and search use).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from the output folder's last checkpoint.")
@click.option("--init", "init_checkpoint", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Continue from your own CLIP checkpoint instead of a fresh model.")
@click.option("--text-model", default=None, help="Local HF text-encoder folder (default: the cached all-MiniLM-L6-v2).")
@click.option("--epochs", type=float, default=None, help="Passes over the pairs (default 5).")
@click.option("--max-steps", type=int, default=None, help="Stop after this many steps (overrides --epochs).")
@click.option("--batch-size", type=int, default=None, help="Pairs per contrastive batch (default 256).")
@click.option("--image-size", type=int, default=None, help="Pixels per side the vision tower sees (default 28).")
@click.option("--split", "split_", default=None, metavar="VALUE",
              help="Train only on items whose 'split' column has this value (e.g. train; default: all items).")
@click.option("--caption", type=click.Choice(["title+text", "title", "text"]), default="title+text", show_default=True,
              help="What each image's caption is made of ('text' when titles only add names).")
@click.option("--prefix-p", type=click.FloatRange(0.0, 1.0), default=None, metavar="P",
              help="Share of captions cut to a random clause prefix ('A warm coat') while training (default 0). "
                   "0.5 lifts zero-shot accuracy on short class texts but lowers text->image search precision "
                   "(hub pictures; docs/images.md); pair it with --center-text.")
@click.option("--center-text/--no-center-text", default=None,
              help="Store the mean text embedding of the training captions (and prefixes) in clip.pt; text queries "
                   "have it subtracted, so no picture tops every short query (default off).")
@common_options
def clip(run: Run, dataset, items, interactions, out_dir, resume, init_checkpoint, text_model, epochs, max_steps,
         batch_size, image_size, split_, caption, prefix_p, center_text) -> None:
    from dataclasses import replace

    from recagent.finetune.clip_train import ClipTrainConfig, train_catalog_clip

    cfg = run.config
    if items or interactions:
        from recagent.cli.data import _with_files

        cfg = _with_files(run, items, interactions, None)
        dataset = "custom"
    overrides = {k: v for k, v in {"epochs": epochs, "max_steps": max_steps, "batch_size": batch_size,
                                   "image_size": image_size, "prefix_p": prefix_p, "center_text": center_text}.items()
                 if v is not None}
    tcfg = replace(ClipTrainConfig(), **overrides)
    res = train_catalog_clip(cfg, dataset, tcfg, out_dir=out_dir, resume=resume, init_checkpoint=init_checkpoint,
                             text_model=text_model, split=split_, caption=caption, progress=not (run.quiet or run.json), log_fn=run.log)
    run.emit(res, lambda d: (f"CLIP checkpoint {d['checkpoint']} (step {d['step']}, loss {d['loss_first']:.3f} -> "
                             f"{d['loss_last']:.3f}, {d['seconds']:.0f} s, {d['pairs_per_second']:.0f} pairs/s)\n"
                             f"search and chat on {d['dataset']} use it now; elsewhere: --set models.clip_checkpoint={d['checkpoint']}"))


COMMANDS = [finetune_group]
