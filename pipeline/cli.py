"""`warehouse-synth <stage> ...`: the installed command; each subcommand is the stage's own CLI.

`warehouse-synth render --config configs/render.yaml --out data/synth` is exactly
`python -m blender.render --config configs/render.yaml --out data/synth`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from pipeline.common import run_cli

STAGES: dict[str, tuple[str, str]] = {
    "humans": ("pipeline.humans", "build the library of posed human meshes (anny)"),
    "render": ("blender.render", "render a randomized warehouse dataset (COCO, exact masks)"),
    "clip": ("blender.clip", "render a ground-truth video clip (MOT + COCO)"),
    "preview": ("pipeline.preview", "contact sheet and statistics of a dataset"),
    "preview-aug": ("pipeline.preview_aug", "grid of augmented training samples"),
    "train": ("pipeline.train", "fine-tune Mask R-CNN on a dataset"),
    "eval": ("pipeline.evaluate", "COCO evaluation with a report"),
    "compare": ("pipeline.compare", "one table over several runs"),
    "video": ("pipeline.video", "detect and track on a video"),
    "export": ("pipeline.export", "ONNX export with a parity check"),
    "convert": ("", "write a dataset in another format: convert --format yolo --data D --out O"),
}
# `convert --format F` picks the module; its own flags follow
CONVERT_FORMATS: dict[str, str] = {"yolo": "pipeline.yolo"}


def convert_module(args: list[str]) -> tuple[str, list[str]]:
    """(module, remaining args) for `convert --format F ...`; the flag may sit anywhere."""
    usage = (f"usage: warehouse-synth convert --format {{{','.join(CONVERT_FORMATS)}}} [args...]   "
             "(warehouse-synth convert --format yolo --help for its flags)")
    for i, a in enumerate(args):
        if a == "--format" or a.startswith("--format="):
            fmt = a.split("=", 1)[1] if "=" in a else (args[i + 1] if i + 1 < len(args) else "")
            if fmt not in CONVERT_FORMATS:
                print(f"error: convert --format {fmt!r}: expected one of {sorted(CONVERT_FORMATS)}", file=sys.stderr)
                sys.exit(2)
            return CONVERT_FORMATS[fmt], args[:i] + args[i + (1 if "=" in a else 2):]
    helping = any(a in ("-h", "--help") for a in args)
    print(usage if helping else f"error: convert needs --format\n{usage}", file=sys.stdout if helping else sys.stderr)
    sys.exit(0 if helping else 2)


def usage() -> str:
    lines = ["usage: warehouse-synth <stage> [args...]   (warehouse-synth <stage> --help for its flags)", ""]
    lines += [f"  {name:<12} {desc}" for name, (_, desc) in STAGES.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if args else 2)
    stage, rest = args[0], args[1:]
    if stage not in STAGES:
        print(f"error: unknown stage {stage!r}\n{usage()}", file=sys.stderr)
        sys.exit(2)
    name = STAGES[stage][0]
    if stage == "convert":
        name, rest = convert_module(rest)
    module = importlib.import_module(name)
    sys.argv = [f"warehouse-synth {stage}", *rest]
    run_cli(module.main, rest)


if __name__ == "__main__":
    main()
