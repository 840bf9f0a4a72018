"""``--report DIR``: Markdown + PNG plots (metric@K curves, ablation bars, CIs) + JSON, with the
RecBole peer numbers alongside ours, labelled as measured elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

from recagent.eval.peers import PEERS, SOURCE


def write_report(run, directory: str | Path, title: str = "") -> Path:
    """Write ``report.md``, ``results.json`` and ``*.png`` into ``directory``.

    Args:
        run: an ``EvalRun`` from ``recagent.eval.runner.run_eval``.
        directory: output folder (created).
        title: optional heading.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "results.json").write_text(json.dumps(run.to_json(), indent=2, default=float), encoding="utf-8")
    plots = _plots(run, d)
    md = [f"# {title or f'Offline evaluation, Protocol {run.protocol}'}", ""]
    md += ["Full ranking over the protocol's item universe; each user's train+valid items are masked; "
           "every model sees the same train+valid history at test time. Hyper-parameters and epochs were "
           f"chosen on the validation split only. Best baseline (by validation NDCG@10): **{run.best_baseline}**.", ""]
    metrics = [m for m in ("ndcg@10", "recall@10", "mrr@10", "hit@10", "precision@10", "ndcg@20", "recall@20",
                           "coverage@10", "novelty@10", "diversity@10") if any(m in r for r in run.results.values())]
    md += ["## Our models (this run)", "", "| model | valid NDCG@10 | " + " | ".join(metrics) + " |",
           "|---|---|" + "---|" * len(metrics)]
    for name, r in run.results.items():
        md.append(f"| {name} | {run.valid.get(name, float('nan')):.4f} | " + " | ".join(f"{r.get(m, float('nan')):.4f}" for m in metrics) + " |")
    sel = run.fusion_selection
    if sel:
        md += ["", f"**Fusion serves {sel['served']}.** Chosen on out-of-fold validation NDCG@10 among the fused "
               "net, each single channel and blends of the best channel with the net:", "",
               "| candidate | valid NDCG@10 |", "|---|---|"]
        md += [f"| {k} | {v:.4f} |" for k, v in sel["valid_ndcg@10"].items()]
    md += ["", f"## Peers: {SOURCE}", "", "These numbers were **measured elsewhere** (not by this run).", ""]
    pm = ["recall@10", "ndcg@10", "mrr@10", "hit@10", "recall@20", "ndcg@20"]
    md += ["| model | " + " | ".join(pm) + " |", "|---|" + "---|" * len(pm)]
    for name, r in PEERS.get(run.protocol, {}).items():
        md.append(f"| {name} | " + " | ".join(f"{r[m]:.4f}" if m in r else "–" for m in pm) + " |")
    if run.ci:
        md += ["", f"## Paired bootstrap 95 % CI of the difference from {run.best_baseline}", "",
               "| model | ΔNDCG@10 [95 % CI] | ΔRecall@10 [95 % CI] |", "|---|---|---|"]
        for name, c in run.ci.items():
            md.append(f"| {name} | " + " | ".join(f"{c[m]['diff']:+.4f} [{c[m]['low']:+.4f}, {c[m]['high']:+.4f}]"
                                                 for m in ("ndcg@10", "recall@10")) + " |")
    if run.ablations:
        md += ["", "## Fusion ablations (test; channels chosen per row, each net trained the same way)", "",
               "| channels | NDCG@10 | Recall@10 | held-out valid NDCG@10 |", "|---|---|---|---|"]
        for label, a in run.ablations.items():
            md.append(f"| {label} | {a['ndcg@10']:.4f} | {a['recall@10']:.4f} | {a.get('holdout_ndcg@10') or float('nan'):.4f} |")
    md += ["", "## Timings (s, wall, shared machine)", "", json.dumps(run.timings), ""]
    md += [f"![{p.stem}]({p.name})" for p in plots]
    (d / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return d


def _plots(run, d: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    ks = sorted({int(k.split("@")[1]) for r in run.results.values() for k in r if k.startswith("ndcg@")})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, met in zip(axes, ("ndcg", "recall")):
        for name, r in run.results.items():
            ax.plot(ks, [r[f"{met}@{k}"] for k in ks], marker="o", label=name)
        ax.set_xlabel("K")
        ax.set_ylabel(f"{met}@K")
        ax.set_title(f"{met}@K, protocol {run.protocol}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    out.append(_save(fig, d / "metrics_at_k.png"))
    if run.ablations:
        labels = list(run.ablations)
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(labels) + 1))
        ax.barh(labels, [run.ablations[l]["ndcg@10"] for l in labels], color="tab:blue")
        ax.invert_yaxis()
        ax.set_xlabel("test NDCG@10")
        ax.set_title("Fusion ablations")
        out.append(_save(fig, d / "ablations.png"))
    if run.ci:
        names = list(run.ci)
        c = [run.ci[n]["ndcg@10"] for n in names]
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1))
        ax.errorbar([x["diff"] for x in c], range(len(names)), xerr=[[x["diff"] - x["low"] for x in c],
                    [x["high"] - x["diff"] for x in c]], fmt="o", capsize=4)
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel(f"NDCG@10 difference from {run.best_baseline} (95 % CI)")
        out.append(_save(fig, d / "ci.png"))
    return out


def _save(fig, path):
    """Lay out, write as PNG and close a figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
