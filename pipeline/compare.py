"""One table over several evaluated runs (e.g. feature extraction vs. fine-tuning vs. gradual unfreezing).

    python -m pipeline.compare runs/features runs/finetune runs/gradual/eval/test [--out compare.md]

Each argument is an eval folder (holding metrics.json), a run folder (its eval/*/ folders are
read) or a folder of runs. The best row per dataset (by segm AP, else bbox AP) is marked.
`--curves OUT.png` also draws the validation curves of every run folder on one figure.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pipeline.common import CLASS_NAMES, UserError, atomic_write_text, read_json, run_cli
from pipeline.curves import plot_curves, read_evals


def find_evals(path: str | Path) -> list[Path]:
    """metrics.json files under an eval folder, a run folder or a folder of runs ([] if none)."""
    path = Path(path)
    if path.is_file() and path.name == "metrics.json":
        return [path]
    if not path.is_dir():
        raise UserError(f"{path}: not found (expected a run folder or an eval folder)")
    for pattern in ("metrics.json", "eval/*/metrics.json", "*/eval/*/metrics.json"):
        found = sorted(path.glob(pattern))
        if found:
            return found
    return []


def _init_text(init) -> str:
    if isinstance(init, dict):
        state = "pretrained" if init.get("pretrained") else "random"
        return f"{init.get('weights', '?')} ({state})"
    return "?" if init is None else str(init)


def _mode_text(training: dict) -> str:
    mode = training.get("mode")
    if mode == "finetune":
        return "gradual unfreezing" if training.get("unfreeze_every") else "fine-tuning"
    return {"features": "feature extraction", "roi_heads": "ROI heads only"}.get(mode, mode or "?")


def _stages_text(training: dict) -> str:
    mode = training.get("mode")
    if mode in ("features", "roi_heads"):
        return "0 (frozen backbone)"
    stages = training.get("trainable_stages")
    every = training.get("unfreeze_every")
    text = "?" if stages is None else str(stages)
    return f"{text} +1 every {every} steps" if every else text


def row_from_metrics(path: Path) -> dict:
    m = read_json(path, "metrics.json")
    if not isinstance(m, dict) or "bbox" not in m:
        raise UserError(f"{path}: not an evaluation metrics.json (no 'bbox' section)")
    ck = m.get("checkpoint", {})
    training = ck.get("training", {})
    main_type = "segm" if "segm" in m else "bbox"
    return {
        "source": str(path.parent),
        "run": training.get("run") or path.parent.parent.parent.name,
        "arch": (training.get("arch") or "?").removeprefix("maskrcnn_"),
        "dataset": Path(m.get("data", {}).get("path", path.parent.name)).name,
        "mode": _mode_text(training),
        "stages": _stages_text(training),
        "steps": ck.get("step"),
        "init": _init_text(ck.get("init")),
        "bbox_AP": m["bbox"].get("AP"),
        "bbox_AP50": m["bbox"].get("AP50"),
        "segm_AP": m.get("segm", {}).get("AP"),
        "per_class": {n: m[main_type]["per_class"].get(n) for n in CLASS_NAMES[1:]},
        "per_class_type": main_type,
        "s_per_img": m.get("timing", {}).get("inference_s_per_image"),
        "device": m.get("timing", {}).get("device"),
    }


def _score(row: dict) -> float:
    v = row["segm_AP"] if row["segm_AP"] is not None else row["bbox_AP"]
    return -1.0 if v is None else v


def mark_winners(rows: list[dict]) -> None:
    """The best row of each dataset wins (runs scored on different sets are not comparable)."""
    for r in rows:
        r["winner"] = False
    for ds in {r["dataset"] for r in rows}:
        group = [r for r in rows if r["dataset"] == ds]
        if len(group) > 1:
            max(group, key=_score)["winner"] = True


def _f(v, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def render_table(rows: list[dict]) -> str:
    classes = CLASS_NAMES[1:]
    header = ["", "run", "model", "dataset", "transfer mode", "trainable stages", "steps", "init",
              "bbox AP", "bbox AP50", "segm AP", *(f"AP {c}" for c in classes), "s/img", "device"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = ["**winner**" if r["winner"] else "", r["run"], r["arch"], r["dataset"], r["mode"], r["stages"],
                 _f(r["steps"]), r["init"], _f(r["bbox_AP"]), _f(r["bbox_AP50"]), _f(r["segm_AP"]),
                 *(_f(r["per_class"][c]) for c in classes), _f(r["s_per_img"], 4), _f(r["device"])]
        if r["winner"]:
            cells[1] = f"**{cells[1]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_compare(rows: list[dict]) -> str:
    types = sorted({r["per_class_type"] for r in rows})
    out = ["# Run comparison", "", render_table(rows), "",
           f"Per-class AP is {' / '.join(types)} AP @[.50:.95]; the winner per dataset has the highest "
           "segm AP (bbox AP where the set has no masks). s/img: model forward time per image "
           "on the device shown.", "", "Sources:", ""]
    out += [f"- {r['run']}: `{r['source']}`" for r in rows]
    return "\n".join(out) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m pipeline.compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="run folders, eval folders or folders of runs")
    ap.add_argument("--out", default=None, help="write the table as markdown here (e.g. compare.md)")
    ap.add_argument("--curves", default=None,
                    help="draw the learning curves of every run folder given on one figure (PNG)")
    return ap.parse_intermixed_args(argv)


def run_folders(paths: Sequence[str]) -> list[Path]:
    """Run folders (holding metrics.jsonl) among `paths`, or directly inside them."""
    runs: list[Path] = []
    for p in map(Path, paths):
        found = [p] if (p / "metrics.jsonl").is_file() else sorted(q.parent for q in p.glob("*/metrics.jsonl"))
        runs += [r for r in found if r not in runs]
    return runs


def write_curves(paths: Sequence[str], out: str) -> Path:
    runs = {r.name: evals for r in run_folders(paths) if (evals := read_evals(r))}
    if not runs:
        raise UserError(f"--curves: no run with validation records (metrics.jsonl) under {' '.join(paths)}")
    return plot_curves(runs, out, title="validation AP: " + ", ".join(runs))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.curves:
        print(f"curves: {write_curves(args.paths, args.curves)}")
    files: list[Path] = []
    for p in args.paths:
        found = find_evals(p)
        if not found:  # e.g. a run still training among runs/*: say so, compare the rest
            print(f"note: {p}: no evaluation (metrics.json, eval/*/metrics.json) found, skipped")
        files += [f for f in found if f.resolve() not in {g.resolve() for g in files}]
    if not files and args.curves:
        print("compare: no evaluations to tabulate (run `make eval`); curves only")
        return 0
    if not files:
        raise UserError(f"no evaluations found under {' '.join(args.paths)} (run `make eval` first)")
    rows = [row_from_metrics(f) for f in files]
    mark_winners(rows)
    text = render_compare(rows)
    print(render_table(rows))
    if args.out:
        atomic_write_text(args.out, text)
    winners = [r for r in rows if r["winner"]]
    best = ", ".join(f"{r['run']} on {r['dataset']} ({_f(r['segm_AP'] if r['segm_AP'] is not None else r['bbox_AP'])})"
                     for r in winners) or "n/a (one run per dataset)"
    print(f"compare: {len(rows)} evaluations, best: {best}" + (f" -> {args.out}" if args.out else ""))
    return 0


if __name__ == "__main__":
    run_cli(main)
