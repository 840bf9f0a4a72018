"""``recagent data pull|info|validate``."""

from __future__ import annotations

import click

from recagent.cli.common import Run, common_options, fail


@click.group("data", help="Fetch, inspect and validate data sets.")
def data_group() -> None:
    pass


@data_group.command("pull", help="Fetch a built-in data set into the cache (a no-op when cached and valid).")
@click.argument("name", default="ml-100k")
@click.option("--force", is_flag=True, help="Fetch again even if cached.")
@common_options
def pull(run: Run, name: str, force: bool) -> None:
    from recagent.data.builtin import BUILTIN, pull_builtin

    folder = pull_builtin(name, run.config.paths.cache, force=force, log=run.log)
    run.emit({"dataset": name, "path": str(folder), "licence": BUILTIN[name].licence},
             lambda d: f"{d['dataset']}: {d['path']}\nlicence: {d['licence']}")


@data_group.command("info", help="Counts and properties of a data set, and optionally its protocol splits.\n\n"
                    "NAME is a built-in data set (ml-100k) or 'custom' with --items/--interactions.")
@click.argument("name", default=None, required=False)
@click.option("--items", type=click.Path(dir_okay=False), help="Catalog file of a custom data set.")
@click.option("--interactions", type=click.Path(dir_okay=False), help="Interaction log of a custom data set.")
@click.option("--users", type=click.Path(dir_okay=False), help="User attributes of a custom data set.")
@click.option("--splits", is_flag=True, help="Also compute Protocol A and B split sizes.")
@common_options
def info(run: Run, name: str | None, items: str | None, interactions: str | None, users: str | None, splits: bool) -> None:
    from recagent.data import load_dataset, make_split

    cfg = _with_files(run, items, interactions, users)
    name = "custom" if (items or interactions) and not name else name
    ds = load_dataset(cfg, name, log_fn=run.log)
    out = ds.summary()
    if splits:
        out["splits"] = {}
        for protocol in ("A", "B"):
            try:
                sp = make_split(ds, protocol, cfg.data)
            except Exception as exc:  # noqa: BLE001 - a protocol may not apply (no ratings)
                out["splits"][protocol] = {"error": str(exc)}
                continue
            out["splits"][protocol] = {**sp.sizes(), "users": int(len(sp.users)), "items": int(len(sp.items))}
    run.emit(out, _render_info)


def _render_info(d: dict) -> str:
    lines = [f"{d['name']}: {d['users']:,} users, {d['items']:,} items, {d['interactions']:,} interactions "
             f"(density {d['density']:.4f})",
             f"ratings: {'yes' if d['has_ratings'] else 'no'}   images: {'yes' if d['has_images'] else 'no'}   "
             f"categories: {d['categories']}   user attributes: {', '.join(d['user_attributes']) or 'none'}"]
    for p, s in d.get("splits", {}).items():
        if "error" in s:
            lines.append(f"protocol {p}: {s['error']}")
        else:
            lines.append(f"protocol {p}: train {s['train']:,} / valid {s['valid']:,} / test {s['test']:,} "
                         f"({s['users']:,} test users, {s['items']:,} items)")
    return "\n".join(lines)


@data_group.command("validate", help="Check your files and list every problem, one line each, with the fix.\n\n"
                    "Errors: unsupported formats, rows with more fields than the header (an unquoted ','), "
                    "missing or duplicate ids, timestamps that are not Unix seconds or ISO 8601 dates within "
                    "1900-2200, ratings outside data.rating_min..rating_max, NUL bytes. Warnings: interactions of "
                    "unknown items (dropped), unreadable or non-regular image files (items kept text-only), cells "
                    "a spreadsheet would run as formulas.\n\n"
                    "Exit status 1 if there are errors (or warnings with --strict).")
@click.option("--items", type=click.Path(dir_okay=False), help="Catalog: item_id, title[, text, categories, year, image_path].")
@click.option("--interactions", type=click.Path(dir_okay=False), help="Log: user_id, item_id, timestamp[, rating].")
@click.option("--users", type=click.Path(dir_okay=False), help="User attributes: user_id + any columns.")
@click.option("--strict", is_flag=True, help="Treat warnings (dropped rows, unreadable images) as errors.")
@common_options
def validate(run: Run, items: str | None, interactions: str | None, users: str | None, strict: bool) -> None:
    from recagent.data import ReadOptions, validate_files

    if not (items or interactions or users):
        fail("give at least one file: --items, --interactions or --users.", 2)
    report = validate_files(items, interactions, users, ReadOptions.from_config(run.config.data))
    bad = bool(report.errors) or (strict and bool(report.warnings))
    if run.json:
        run.emit({"ok": not bad, "errors": report.errors, "warnings": report.warnings})
    else:
        for e in report.errors:
            click.echo(f"error: {e}", err=True)
        for w in report.warnings:
            click.echo(f"warning: {w}", err=True)
        if not bad:
            click.echo("ok" + (f" ({len(report.warnings)} warnings)" if report.warnings else ""))
    if bad:
        raise SystemExit(1)


@data_group.command("list", help="Built-in data sets: users, items, items with images (counts once pulled), licence.")
@common_options
def list_(run: Run) -> None:
    from recagent.data.builtin import BUILTIN, builtin_summary

    rows = [builtin_summary(name, run.config.paths.cache) for name in BUILTIN]
    fmt = lambda v: "-" if v is None else f"{v:,}"  # noqa: E731
    run.emit(rows, lambda rs: "\n".join(
        f"{r['name']:<18} users {fmt(r['users']):>7}  items {fmt(r['items']):>7}  with images {fmt(r['items_with_images']):>7}"
        f"{'' if r['cached'] else '  (not pulled: recagent data pull ' + r['name'] + ')'}\n    {r['description']}" for r in rs))


def _with_files(run: Run, items: str | None, interactions: str | None, users: str | None):
    changes = {k: v for k, v in {"items": items, "interactions": interactions, "users": users}.items() if v}
    if changes:
        return run.config.replace("data", dataset="custom", **changes)
    return run.config


COMMANDS = [data_group]
