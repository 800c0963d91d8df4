"""Held-out material families: how much AP a detector loses on surfaces it never saw.

    python -m bench.heldout [--hold painted_steel concrete cardboard+shrink_wrap]
        [--train-images 150] [--test-images 60] [--steps 880] [--out runs/heldout]
        [--baseline-run runs/demo_plain]

For each held-out group G (families joined by `+`) it renders, with the demo's scenes
(`--render-config`):
  train       every family but G                  (dataset seed 0)
  test_in     every family but G                  (seed 1000003)
  test_out    G alone, the other surfaces plain   (seed 1000003: the same scenes as test_in)
trains the demo recipe (`--train-config`, `--steps`) on `train` and scores it on both test
sets. The materials draw from their own random stream, so test_in and test_out hold the same
layouts, people, jacks and cameras and differ only in the surfaces: their AP difference is
the drop for G.

"Before" is a model trained on flat colours (no family at all), scored on a flat test set of
the same scenes (flat/test, seed 1000003) and on each test_out: the drop the renders had
before the materials. Give one with --baseline-run (e.g. the demo recipe trained with
`scene.materials.families=[]`), or leave it out and the flat model is trained here the same
way as the others.

Every stage is a file: a rerun skips what is finished and resumes what was interrupted.
Writes OUT/heldout.json (also printed) and OUT/heldout.md. Costs, 2 CPU cores: ~2.6 s per
rendered image, the training steps, ~0.2 s per scored image; the defaults take ~25 min per
group.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEST_SEED = 1000003


def _families_arg(families: list[str]) -> str:
    return f"scene.materials.families=[{','.join(families)}]"


def _run(cmd: list[str]) -> None:
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=sys.stderr)  # stdout carries only the JSON


def render(cfg: str, out: Path, families: list[str], num: int, seed: int, humans: str, extra: list[str]) -> Path:
    if not (out / "annotations.json").exists():
        _run([sys.executable, "-m", "blender.render", "--config", cfg, "--out", str(out), "--num-images",
              str(num), "--seed", str(seed), f"humans_dir={humans}", *extra, _families_arg(families)])
    return out


def train(cfg: str, data: Path, out: Path, steps: int, extra: list[str]) -> Path:
    if not (out / "summary.json").exists():
        resume = ["--resume"] if (out / "last.pt").exists() else []
        _run([sys.executable, "-m", "pipeline.train", "--config", cfg, "--data", str(data), "--out", str(out),
              *resume, *extra, f"solver.max_iters={steps}"])
    return out / "best.pt"


def score(cfg: str, ckpt: Path, data: Path, out: Path) -> dict:
    metrics = out / "metrics.json"
    if not metrics.exists() or metrics.stat().st_mtime < ckpt.stat().st_mtime:
        _run([sys.executable, "-m", "pipeline.evaluate", "--config", cfg, "--checkpoint", str(ckpt),
              "--data", str(data), "--out", str(out)])
    return headline(json.loads(metrics.read_text()))


def headline(m: dict) -> dict:
    """The figures compared: box AP, box AP50 per class, mask AP (None without masks)."""
    out = {"box_AP": m["bbox"]["AP"]}
    out.update({f"AP50_{c}": v for c, v in m["bbox"]["per_class_AP50"].items()})
    out["mask_AP"] = m["segm"]["AP"] if m.get("segm") else None
    return out


def drop(seen: dict, unseen: dict) -> dict:
    return {k: (None if seen[k] is None or unseen[k] is None else seen[k] - unseen[k]) for k in seen}


def table(results: dict) -> str:
    rows = ["| held out | model | AP seen | AP held out | drop | ped AP50 drop | jack AP50 drop |",
            "|---|---|---|---|---|---|---|"]
    for g in results["groups"]:
        for when in ("before", "after"):
            r = g[when]
            rows.append(f"| {g['held_out']} | {when} | {r['seen']['box_AP']:.3f} | {r['unseen']['box_AP']:.3f} | "
                        f"{r['drop']['box_AP']:+.3f} | {r['drop']['AP50_pedestrian']:+.3f} | "
                        f"{r['drop']['AP50_pallet_jack']:+.3f} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    from blender.plan.scene_config import MATERIAL_FAMILIES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hold", nargs="+", default=["painted_steel", "concrete", "cardboard+shrink_wrap"],
                    help="held-out groups: family names, joined by + for a group held out together")
    ap.add_argument("--train-images", type=int, default=150)
    ap.add_argument("--test-images", type=int, default=60)
    ap.add_argument("--steps", type=int, default=880)
    ap.add_argument("--render-config", default="configs/render_demo.yaml")
    ap.add_argument("--train-config", default="configs/train_demo.yaml")
    ap.add_argument("--eval-config", default="configs/eval_demo.yaml")
    ap.add_argument("--humans", default="assets_cache/humans")
    ap.add_argument("--baseline-run", help="a run trained on flat colours (its best.pt); else trained here")
    ap.add_argument("--render-set", nargs="*", default=[], metavar="KEY=VALUE", help="render config overrides")
    ap.add_argument("--train-set", nargs="*", default=[], metavar="KEY=VALUE", help="train config overrides")
    ap.add_argument("--out", default="runs/heldout")
    args = ap.parse_args(argv)
    groups = [g.split("+") for g in args.hold]
    for g in groups:
        unknown = sorted(set(g) - set(MATERIAL_FAMILIES))
        if unknown:
            ap.error(f"--hold: unknown family {unknown[0]!r}; expected names from {', '.join(MATERIAL_FAMILIES)}")
    out = Path(args.out)
    r_cfg, t_cfg, e_cfg = args.render_config, args.train_config, args.eval_config
    rset, tset = args.render_set, args.train_set

    flat_ckpt = Path(args.baseline_run) / "best.pt" if args.baseline_run else None
    if flat_ckpt is not None and not flat_ckpt.exists():  # before any rendering
        ap.error(f"--baseline-run: {flat_ckpt} not found (a finished training run folder expected)")

    flat_test = render(r_cfg, out / "flat" / "test", [], args.test_images, TEST_SEED, args.humans, rset)
    if flat_ckpt is None:
        flat_train = render(r_cfg, out / "flat" / "train", [], args.train_images, 0, args.humans, rset)
        flat_ckpt = train(t_cfg, flat_train, out / "flat" / "run", args.steps, tset)
    flat_seen = score(e_cfg, flat_ckpt, flat_test, out / "flat" / "eval_flat")

    results = {"benchmark": "heldout_material_families", "train_images": args.train_images,
               "test_images": args.test_images, "steps": args.steps, "render_config": r_cfg,
               "render_set": rset, "train_config": t_cfg, "train_set": tset,
               "baseline_run": str(flat_ckpt.parent), "groups": []}
    for g in groups:
        name = "+".join(g)
        rest = [f for f in MATERIAL_FAMILIES if f not in g]
        base = out / name
        data = render(r_cfg, base / "train", rest, args.train_images, 0, args.humans, rset)
        test_in = render(r_cfg, base / "test_in", rest, args.test_images, TEST_SEED, args.humans, rset)
        test_out = render(r_cfg, base / "test_out", g, args.test_images, TEST_SEED, args.humans, rset)
        ckpt = train(t_cfg, data, base / "run", args.steps, tset)
        seen, unseen = score(e_cfg, ckpt, test_in, base / "eval_in"), score(e_cfg, ckpt, test_out, base / "eval_out")
        flat_unseen = score(e_cfg, flat_ckpt, test_out, base / "eval_flat_model")
        results["groups"].append({
            "held_out": name, "train_families": rest,
            "before": {"seen": flat_seen, "unseen": flat_unseen, "drop": drop(flat_seen, flat_unseen)},
            "after": {"seen": seen, "unseen": unseen, "drop": drop(seen, unseen)}})
        (out / "heldout.json").write_text(json.dumps(results, indent=2))
    (out / "heldout.md").write_text(table(results))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
