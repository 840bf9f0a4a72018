"""``recagent models pull|list``."""

from __future__ import annotations

import click

from recagent.cli.common import Run, common_options, table


@click.group("models", help="Fetch and list model weights.")
def models_group() -> None:
    pass


@models_group.command("pull", help="Fetch the configured shipped models (default LLM and text encoder) into the cache.\n\n"
                      "The LLM is also converted once for the fast backend (CTranslate2 int8) unless "
                      "models.llm_backend=hf. Repeated pulls are no-ops; a broken or partial cache is detected and "
                      "fetched again.")
@click.argument("aliases", nargs=-1)
@click.option("--force", is_flag=True, help="Fetch again even if cached.")
@common_options
def pull(run: Run, aliases: tuple[str, ...], force: bool) -> None:
    from recagent.models import SHIPPED, pull_fast_model, pull_model

    cfg = run.config
    wanted = list(aliases) or [a for a in (cfg.models.llm, cfg.models.text_encoder) if a in SHIPPED]
    done = []
    for alias in wanted:
        path = pull_model(alias, cfg.paths.cache, force=force, log_fn=run.log)
        done.append({"alias": alias, "path": str(path)})
        if SHIPPED[alias].kind == "llm" and getattr(cfg.models, "llm_backend", "ct2") == "ct2":
            fast = pull_fast_model(alias, cfg.paths.cache, force=force, log_fn=run.log)
            done.append({"alias": f"{alias} (ct2)", "path": str(fast)})
    run.emit({"pulled": done}, lambda d: "\n".join(f"{m['alias']}: {m['path']}" for m in d["pulled"]) or "nothing to pull")


@models_group.command("list", help="Shipped models, whether each is cached, and where.")
@common_options
def list_cmd(run: Run) -> None:
    from recagent.models import list_models

    rows = list_models(run.config.paths.cache)
    run.emit({"models": rows}, lambda d: table(
        [{**r, "cached": "yes" if r["cached"] else "no"} for r in d["models"]],
        ["alias", "kind", "cached", "size_mb", "source", "path"]))


COMMANDS = [models_group]
