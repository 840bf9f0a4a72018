"""``recagent index build|status`` and ``recagent search``."""

from __future__ import annotations

import click

from recagent.cli.common import Run, common_options, table


def _open(run: Run, dataset: str | None, chroma_url: str | None):
    from recagent.data import load_dataset
    from recagent.retrieval import ItemIndex

    ds = load_dataset(run.config, dataset, log_fn=run.log)
    # waiting for another process's build is said on stderr even with --json (else it looks hung)
    waiting = None if run.quiet else (lambda msg: click.echo(msg, err=True))
    return ds, ItemIndex.open(run.config, ds, chroma_url=chroma_url, log_fn=waiting)


_dataset_opt = click.option("--dataset", default=None, help="Data set name (default: data.dataset, i.e. ml-100k).")
_url_opt = click.option("--chroma-url", default=None, metavar="URL",
                        help="Use a Chroma server (`chroma run`) instead of the embedded store under the runs dir.")


@click.group("index", help="Build and inspect the item index (ChromaDB).\n\n"
             "\b\nExamples:\n  recagent index build --dataset ml-100k\n  recagent index status --dataset ml-100k")
def index_group() -> None:
    pass


@index_group.command("build", help="Embed the catalog into the index; only new or changed items are embedded, "
                     "so rerunning (also after an interrupted build) is cheap. One build at a time: a second one "
                     "waits up to retrieval.lock_timeout seconds.")
@_dataset_opt
@click.option("--rebuild", is_flag=True, help="Delete the index and build it from scratch (repairs a damaged one).")
@_url_opt
@common_options
def build(run: Run, dataset: str | None, rebuild: bool, chroma_url: str | None) -> None:
    ds, index = _open(run, dataset, chroma_url)
    do = index.rebuild if rebuild else index.build
    report = do(ds, progress=not (run.quiet or run.json), log_fn=run.log)
    out = report.to_dict()
    run.emit(out, lambda d: f"index {d['location']}: " + ", ".join(
        f"{ch} {c['total']} items" for ch, c in d["channels"].items()) + f" ({d['seconds']:.1f} s)")


@index_group.command("status", help="Per channel: items stored and encoder, or why the channel is absent.")
@_dataset_opt
@_url_opt
@common_options
def status(run: Run, dataset: str | None, chroma_url: str | None) -> None:
    ds, index = _open(run, dataset, chroma_url)
    health = index.health(ds)
    st = index.status()
    rows = [{"channel": ch, "items": s.get("count", ""), "encoder": s.get("encoder", ""), "note": s.get("absent", "")}
            for ch, s in st.items()]
    state = health.state + (f": {health.detail}" if health.detail else "")
    run.emit({"location": index.location, "state": health.state, "detail": health.detail, "channels": st},
             lambda d: f"index {d['location']} ({state})\n" + table(rows, ["channel", "items", "encoder", "note"]))


@click.command("search", help="Search the catalog by text (builds the index on first use).\n\n"
               "\b\nExamples:\n  recagent search \"space adventure with robots\" --dataset ml-100k --k 10\n"
               "  recagent search \"romantic comedy\" --include Comedy --exclude Drama --year-max 1995 --json")
@click.argument("query")
@_dataset_opt
@click.option("--k", "k", type=click.IntRange(min=1, max=10_000), default=10, show_default=True,
              help="Number of results (1 to 10,000).")
@click.option("--channel", "channels", multiple=True, type=click.Choice(["text", "image", "clip_text"]),
              help="Channel(s) to search (default text; image/clip_text need CLIP weights). Repeatable.")
@click.option("--include", "include", multiple=True, metavar="CATEGORY", help="Only items with one of these categories.")
@click.option("--exclude", "exclude", multiple=True, metavar="CATEGORY", help="No items with these categories.")
@click.option("--year-min", type=click.IntRange(0, 9999), default=None, help="Only items released in or after this year.")
@click.option("--year-max", type=click.IntRange(0, 9999), default=None, help="Only items released in or before this year.")
@click.option("--exclude-id", "exclude_ids", multiple=True, metavar="ITEM_ID", help="Never return this item (repeatable).")
@_url_opt
@common_options
def search(run: Run, query: str, dataset: str | None, k: int, channels: tuple[str, ...], include: tuple[str, ...],
           exclude: tuple[str, ...], year_min: int | None, year_max: int | None, exclude_ids: tuple[str, ...],
           chroma_url: str | None) -> None:
    if year_min is not None and year_max is not None and year_min > year_max:
        raise click.BadParameter(f"--year-min {year_min} is after --year-max {year_max}; swap them.",
                                 param_hint="'--year-min'")
    ds, index = _open(run, dataset, chroma_url)
    built = index.ensure_built(ds, progress=not (run.quiet or run.json), log_fn=run.log)
    if built is not None:
        run.log(f"built the index at {built.location} in {built.seconds:.1f} s")
    hits = index.query_text(query, k=k, channels=list(channels) or "text", include_categories=include,
                            exclude_categories=exclude, year_min=year_min, year_max=year_max, exclude_ids=exclude_ids)
    cat = ds.catalog
    results = [{"item_id": h.item_id, "title": cat.title(h.item_id), "score": round(h.score, 4), "channel": h.channel}
               for h in hits]
    rows = [{"#": i + 1, **r, "categories": ", ".join(cat.get(r["item_id"])["categories"])} for i, r in enumerate(results)]
    run.emit({"results": results},
             lambda d: table(rows, ["#", "score", "item_id", "title", "categories", "channel"]) if rows else "no results")


COMMANDS = [index_group, search]
