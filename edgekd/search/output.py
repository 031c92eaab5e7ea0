"""The search's results: ``search.json`` (every point, the front, the choice), ``search.md``
(the front table) and ``front.png`` (accuracy × latency, resource as colour, the budget)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.search.budget import Budget
from edgekd.search.pareto import pareto_front
from edgekd.search.trial import TrialRecord


def front_of(recs: list[TrialRecord]) -> list[dict[str, Any]]:
    """The Pareto front of the fully trained trials (accuracy up, latency and resource down)."""
    return pareto_front([r.point() for r in recs if r.status == "complete"])


def closest(recs: list[TrialRecord], budget: Budget, n: int = 3) -> list[TrialRecord]:
    from edgekd.search.costs import Cost

    def dist(r: TrialRecord) -> float:
        return budget.distance(Cost(**r.cost).budget_figures(r.val_accuracy, budget.on))

    done = sorted([r for r in recs if r.status == "complete" and r.cost], key=dist)
    # too few trained points: the nearest priced-but-untrained ones too (their accuracy is unknown)
    untrained = sorted([r for r in recs if r.status == "over-budget" and r.cost], key=dist)
    return (done + untrained)[:n]


def fmt_point(r: TrialRecord | dict[str, Any], resource_name: str) -> str:
    p = r.point() if isinstance(r, TrialRecord) else r
    if isinstance(r, TrialRecord) and r.status != "complete":
        return f"{p['label']}: not trained ({r.status}), {p['latency_us']:,.2f} µs"
    res = f"{100 * p['resource']:.0f} % of the part" if resource_name == "part" else f"{p['resource']:,.0f} params"
    return f"{p['label']}: val {100 * p['accuracy']:.1f} %, {p['latency_us']:,.2f} µs, {res}"


def table(recs: list[TrialRecord], front: list[dict[str, Any]], resource_name: str) -> str:
    by_key = {r.key: r for r in recs}
    head = ("| student | val acc | test acc | latency µs | label | LUT | FF | DSP | BRAM | budget met |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n") if resource_name == "part" else \
        ("| student | val acc | test acc | latency µs (p50) | label | params | budget met |\n"
         "|---|---|---|---|---|---|---|\n")
    rows = []
    for p in front:
        r = by_key[p["key"]]
        c = r.cost or {}
        iv = c.get("latency_interval")
        lat = f"{c.get('latency_us', float('nan')):,.2f}" + (f" [{iv[0]:,.2f}–{iv[1]:,.2f}]" if iv else "")
        acc = f"{100 * (r.val_accuracy or 0):.1f} %"
        test = f"{100 * r.test_accuracy:.1f} %" if r.test_accuracy is not None else "—"
        met = "yes" if r.budget_met else "no"
        if resource_name == "part":
            res = c.get("resources", {})
            up = c.get("upper", {})
            cells = [f"{100 * res[k]:.0f} %" + (f" (≤{100 * up[k]:.0f} %)" if k in up else "") if k in res else "—"
                     for k in ("lut", "ff", "dsp", "bram")]
            rows.append(f"| {r.label} | {acc} | {test} | {lat} | {c.get('latency_label', '')} | "
                        + " | ".join(cells) + f" | {met} |")
        else:
            rows.append(f"| {r.label} | {acc} | {test} | {lat} | {c.get('latency_label', '')} | "
                        f"{c.get('resources', {}).get('params', 0):,.0f} | {met} |")
    return head + "\n".join(rows) + "\n"


def plot(recs: list[TrialRecord], front: list[dict[str, Any]], budget: Budget, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in recs if r.status == "complete" and r.cost]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if pts:
        xs = [r.cost["latency_us"] for r in pts]
        ys = [100 * (r.val_accuracy or 0) for r in pts]
        err = [[max(r.cost["latency_us"] - r.cost["latency_interval"][0], 0) if r.cost.get("latency_interval")
                else 0 for r in pts],
               [max(r.cost["latency_interval"][1] - r.cost["latency_us"], 0) if r.cost.get("latency_interval")
                else 0 for r in pts]]
        ax.errorbar(xs, ys, xerr=err, fmt="none", ecolor="0.7", lw=0.8, zorder=1)
        sc = ax.scatter(xs, ys, c=[r.point()["resource"] for r in pts], cmap="viridis", zorder=2)
        fig.colorbar(sc, ax=ax, label="resource (fraction of part, or parameters)")
        fx = sorted(front, key=lambda p: p["latency_us"])
        ax.plot([p["latency_us"] for p in fx], [100 * p["accuracy"] for p in fx], "r-", lw=1, label="Pareto front")
    if "latency_us" in budget.limits:
        ax.axvline(budget.limits["latency_us"], color="k", ls="--", lw=0.8, label="latency budget")
    if "accuracy" in budget.limits:
        ax.axhline(100 * budget.limits["accuracy"], color="k", ls=":", lw=0.8, label="accuracy budget")
    ax.set_xscale("log")
    ax.set_xlabel("latency µs (log; bars: interval)")
    ax.set_ylabel("validation accuracy %")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
