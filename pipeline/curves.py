"""Learning curves: validation AP per class against step and against training minutes.

Every run writes RUN/curve.png from its RUN/metrics.jsonl validation records (after each
validation, so a killed run still has its curve); `pipeline.compare --curves OUT.png` draws
several runs on one figure. Minutes are training time (steps and data loading, validation
excluded), summed across resumes, so runs with different validation sets compare fairly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.common import CLASS_NAMES, UserError, atomic_write_with

# (metric section, key) per figure row; per-class values are AP@[.5:.95] or AP50
ROWS = [("bbox", "AP"), ("bbox", "AP50"), ("segm", "AP")]


def read_evals(path: str | Path) -> list[dict]:
    """The validation records of a run folder's (or a file's) metrics.jsonl, in step order."""
    path = Path(path)
    file = path / "metrics.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"{file}: not found (expected a run folder with metrics.jsonl)")
    out = []
    for n, line in enumerate(file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{file}:{n}: not a JSON line") from None
        if rec.get("event") == "eval":
            out.append(rec)
    return sorted(out, key=lambda r: r["step"])


def series(evals: Sequence[dict], section: str, key: str, cls: str) -> tuple[list[float], list[float], list[float]]:
    """(steps, minutes, values) of one class's `key` in `section` (None values left out)."""
    field = "per_class_AP50" if key == "AP50" else "per_class"
    steps, minutes, values = [], [], []
    for r in evals:
        # records of runs older than per-class AP50 lack the field: no point, not a crash
        v = ((r.get(section) or {}).get(field) or {}).get(cls)
        if v is None:
            continue
        steps.append(r["step"])
        minutes.append(r.get("train_time", r.get("time", 0.0)) / 60)
        values.append(v)
    return steps, minutes, values


def plot_curves(runs: Mapping[str, Sequence[dict]], out: str | Path, title: str | None = None) -> Path:
    """One figure: rows box AP, box AP50, mask AP; columns vs step and vs minutes. One colour per
    run (per class when there is one run), one line style per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = CLASS_NAMES[1:]
    styles = ["-", "--", ":", "-."]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(len(ROWS), 2, figsize=(11, 3.1 * len(ROWS)), squeeze=False)
    single = len(runs) == 1
    for r, (section, key) in enumerate(ROWS):
        for i, (name, evals) in enumerate(runs.items()):
            for j, cls in enumerate(classes):
                steps, minutes, values = series(evals, section, key, cls)
                if not values:
                    continue
                colour = colours[(j if single else i) % len(colours)]
                label = cls if single else f"{name}: {cls}"
                kw = dict(color=colour, linestyle=styles[j % len(styles)], marker="o", markersize=3, label=label)
                axes[r][0].plot(steps, values, **kw)
                axes[r][1].plot(minutes, values, **kw)
        label = {"bbox": "box", "segm": "mask"}[section] + f" {key}"
        for c, xlabel in enumerate(("step", "training minutes")):
            ax = axes[r][c]
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"val {label}")
            ax.set_ylim(0, 1)
            ax.set_xlim(left=0)
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(4, len(labels)), fontsize=8,
                   bbox_to_anchor=(0.5, 1.0))
    if title:
        fig.suptitle(title, y=1.03)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    path = atomic_write_with(out, lambda tmp: fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight"))
    plt.close(fig)
    return path


def plot_run(run_dir: str | Path) -> Path | None:
    """RUN/curve.png from RUN/metrics.jsonl; None when the run has no validation record yet."""
    run_dir = Path(run_dir)
    evals = read_evals(run_dir)
    if not evals:
        return None
    return plot_curves({run_dir.name: evals}, run_dir / "curve.png", title=f"{run_dir.name}: validation AP")
