"""Fine-tune Mask R-CNN on a COCO dataset.

    python -m pipeline.train --config configs/train.yaml --data DATASET_DIR --out RUN_DIR \
        [--max-iters N] [--resume] [key=value ...]

Wiring only: the loop is pipeline/trainer.py, the periodic work (logging, validation,
checkpoints, unfreezing) pipeline/hooks.py, checkpoint content and resume pipeline/checkpoint.py.
Writes RUN_DIR/config.yaml (resolved config), last.pt (every log.checkpoint_every steps),
best.pt (best validation mask AP), metrics.jsonl and tb/ (docs/DESIGN.md §7 "Run folder"), and
summary.json when the run has reached solver.max_iters (a completion marker for make).
`--resume` continues from last.pt exactly: same step, optimizer, schedule, RNG and data order.
Multi-GPU: `torchrun --nproc_per_node N -m pipeline.train ...`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from pipeline import distributed
from pipeline.checkpoint import Checkpointer, restore
from pipeline.coco_eval import ground_truth_from_dict
from pipeline.common import (
    UserError,
    atomic_write_json,
    atomic_write_text,
    config_to_dict,
    config_to_yaml,
    ensure_writable_dir,
    load_config,
    parse_class_map,
    run_cli,
)
from pipeline.config import TrainConfig
from pipeline.data import CocoDetection, StepSampler, collate_fn, split_ids
from pipeline.devices import resolve_device
from pipeline.ema import build_ema
from pipeline.engine import (
    TrainingDiverged,
    amp_dtype,
    build_optimizer,
    build_scheduler,
    dtype_name,
    use_channels_last,
)
from pipeline.hooks import (
    MetricsLog,
    MetricsWriter,
    PeriodicCheckpoint,
    TimeBudget,
    Unfreeze,
    Validation,
    apply_budget,
    headline,
)
from pipeline.model import (
    build_model,
    calibrate_frozen_bn,
    check_compatible,
    inference_sizes,
    load_checkpoint,
)
from pipeline.trainer import TrainState, train
from pipeline.transforms import Augment


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pipeline.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="YAML config (configs/train.yaml)")
    p.add_argument("--data", help="dataset folder (images/ + annotations.json); overrides data.train")
    p.add_argument("--val-data", help="separate validation dataset folder; overrides data.val")
    p.add_argument("--out", required=True, help="run folder for checkpoints, metrics and logs")
    p.add_argument("--max-iters", type=int, help="optimizer steps in total; overrides solver.max_iters")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. solver.lr=0.01")
    return p.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    cfg = load_config(args.config, TrainConfig, args.overrides)
    # flags are assigned, not parsed as YAML overrides, so a path like `2024` stays a string
    if args.data:
        cfg.data.train = args.data
    if args.val_data:
        cfg.data.val = args.val_data
    if args.max_iters is not None:
        if args.max_iters < 1:
            raise UserError(f"--max-iters {args.max_iters}: expected a positive number of steps")
        cfg.solver.max_iters = args.max_iters
    if not cfg.data.train:
        raise UserError(f"{args.config}: no training data (pass --data DATASET_DIR or set data.train)")
    parse_class_map([f"{k}={v}" for k, v in cfg.data.class_map.items()])  # validates the targets
    return cfg


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def build_datasets(cfg: TrainConfig) -> tuple[CocoDetection, CocoDetection | None, list[str]]:
    d = cfg.data
    notes = []
    aug = Augment(cfg.augment)
    ann = Path(d.ann_file) if d.ann_file else None
    if d.val:
        train = CocoDetection(Path(d.train), ann, aug, d.class_map, d.skip_bad, crowd=d.crowd)
        val = CocoDetection(Path(d.val), None, None, d.class_map, d.skip_bad)
    else:
        probe = CocoDetection(Path(d.train), ann, None, d.class_map, d.skip_bad)
        train_ids, val_ids = split_ids(probe.image_ids, d.val_fraction, d.split_seed)
        train = CocoDetection(Path(d.train), ann, aug, d.class_map, d.skip_bad, image_ids=train_ids,
                              crowd=d.crowd)
        val = CocoDetection(Path(d.train), ann, None, d.class_map, d.skip_bad, image_ids=val_ids) \
            if val_ids else None
    for name, ds in (("train", train), ("val", val)):
        if ds is not None and ds.num_skipped:
            notes.append(f"{name}: skipped {ds.num_skipped} bad records (first: {ds.problems[0]})")
        if ds is not None and ds.dropped_categories:
            notes.append(f"{name}: categories left out by the class map: {ds.dropped_categories}")
    return train, val, notes


def calibration_batches(ds: CocoDetection, n: int, seed: int, batch: int = 4):
    """The first `n` images of a seeded order (unaugmented): same on every rank and every rerun."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(ds), generator=g).tolist()[: min(n, len(ds))]
    for i in range(0, len(order), batch):
        yield [ds.load_tensor(j) for j in order[i:i + batch]]


def open_resume(args: argparse.Namespace, cfg: TrainConfig, out: Path, is_main: bool) -> dict | None:
    """The last.pt to continue from with --resume (checked against the config); refuses to
    write over an existing run without it."""
    last_pt = out / "last.pt"
    if not args.resume:
        if last_pt.exists():
            raise UserError(f"{out} already holds a run (last.pt); pass --resume to continue it or choose another --out")
        return None
    ckpt = load_checkpoint(last_pt) if last_pt.exists() else None
    if ckpt is None:
        raise UserError(f"{last_pt}: nothing to resume (no last.pt in {out})")
    check_compatible(ckpt, last_pt, cfg.model.arch)
    if cfg.model.norm == "auto":  # the norm the run resolved at its start
        cfg.model.norm = ckpt["config"]["model"].get("norm", "auto")
    # the run's length may change on resume: that is what "train longer" means
    changed = [k for k in changed_keys(ckpt["config"], config_to_dict(cfg))
               if k not in ("solver.max_iters", "solver.max_minutes")]
    if changed and is_main:
        print(f"note: resuming with changed settings ({', '.join(changed)}): not an exact continuation")
    return ckpt


def initial_model(cfg: TrainConfig, ckpt: dict | None, train_ds: CocoDetection, device: torch.device):
    """The model a run starts from (its weights policy, or the checkpoint's weights) and its init record."""
    torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model_cfg = cfg.model.model_copy(update={"weights": "none"}) if ckpt else cfg.model
    model, init_info = build_model(model_cfg)
    if ckpt:
        model.load_state_dict(ckpt.get("train_model", ckpt["model"]))  # raw weights under EMA
        init_info = ckpt["init"]
    cfg.model.norm = init_info.get("norm", cfg.model.norm)  # recorded, so checkpoints rebuild the same net
    model.to(device)
    if (not ckpt and not init_info.get("pretrained") and init_info.get("norm") == "frozen_bn"
            and cfg.model.bn_calibration_images):
        n = calibrate_frozen_bn(model, calibration_batches(train_ds, cfg.model.bn_calibration_images, cfg.seed))
        init_info["bn_calibration"] = f"backbone FrozenBatchNorm2d statistics from {n} training images"
    return model, init_info


def loaders(cfg: TrainConfig, train_ds: CocoDetection, val_ds: CocoDetection | None, step: int,
            dinfo: distributed.DistInfo, device: torch.device):
    """The training batches from `step` on (this rank's slice), and rank 0's validation loader
    with its ground truth."""
    bs = cfg.data.batch_size
    sampler = StepSampler(len(train_ds), bs, cfg.seed, start_step=step, rank=dinfo.rank,
                          world_size=dinfo.world_size)
    loader = torch.utils.data.DataLoader(
        train_ds, batch_size=bs, sampler=sampler, num_workers=cfg.data.workers, collate_fn=collate_fn,
        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(cfg.seed),
        persistent_workers=False, prefetch_factor=4 if cfg.data.workers else None)
    if val_ds is None or not dinfo.is_main:
        return loader, None, None
    if cfg.log.val_max_images and len(val_ds) > cfg.log.val_max_images:
        val_ds = CocoDetection(Path(cfg.data.val or cfg.data.train), None if cfg.data.val else
                               (Path(cfg.data.ann_file) if cfg.data.ann_file else None), None,
                               cfg.data.class_map, cfg.data.skip_bad,
                               image_ids=sorted(val_ds.image_ids)[: cfg.log.val_max_images])
    gt = ground_truth_from_dict(val_ds.coco, None, f"validation set ({val_ds.ann_file})")
    # persistent: validation reruns this loader every eval_every steps; re-forking costs seconds
    val_loader = torch.utils.data.DataLoader(val_ds, batch_size=1, shuffle=False,
                                             num_workers=min(1, cfg.data.workers), collate_fn=collate_fn,
                                             pin_memory=device.type == "cuda",
                                             persistent_workers=cfg.data.workers > 0,
                                             generator=torch.Generator().manual_seed(0))
    return loader, val_loader, gt


def ddp_wrapper(dinfo: distributed.DistInfo, device: torch.device):
    def wrap(model):
        if not dinfo.enabled:
            return model
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return wrap


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = resolve_config(args)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    dinfo = distributed.init_distributed(device.type)
    device = distributed.device_for(dinfo, device)
    out = Path(args.out)
    if dinfo.is_main:
        ensure_writable_dir(out)
    ckpt = open_resume(args, cfg, out, dinfo.is_main)
    train_ds, val_ds, notes = build_datasets(cfg)
    for n in notes:
        if dinfo.is_main:
            print(f"note: {n}")

    model, init_info = initial_model(cfg, ckpt, train_ds, device)
    dtype = amp_dtype(cfg.solver.amp, device)
    if use_channels_last(cfg.solver.channels_last, device, dtype):
        model.to(memory_format=torch.channels_last)  # before the optimizer: its state follows the params
    optimizer = build_optimizer(model, cfg.solver, bool(init_info.get("pretrained")))
    state = TrainState(model=model, optimizer=optimizer, scheduler=build_scheduler(optimizer, cfg.solver),
                       scaler=torch.amp.GradScaler("cuda") if dtype == torch.float16 else None,
                       device=device, dtype=dtype, max_iters=cfg.solver.max_iters,
                       ema=build_ema(model, cfg.solver.ema_decay))
    torch.manual_seed(cfg.seed * 1_000_003 + dinfo.rank)  # RPN/ROI sampling differs per rank
    budget = cfg.solver.max_minutes
    if ckpt:
        restore(state, ckpt, dinfo.rank)
        planned = bool(budget and state.budget)
        if planned:  # the pace it measured, with the minutes asked for now
            apply_budget(state, cfg.solver, budget)
        if state.step >= cfg.solver.max_iters:
            more = "solver.max_minutes" if planned else "--max-iters"
            raise UserError(f"{out / 'last.pt'}: run already at step {state.step} >= solver.max_iters "
                            f"{cfg.solver.max_iters} (raise {more} to train longer)")
    start_step = state.step

    tb = log = None
    if dinfo.is_main:
        atomic_write_text(out / "config.yaml", config_to_yaml(cfg))
        log = MetricsLog(out / "metrics.jsonl", state.step if ckpt else None)
        from torch.utils.tensorboard import SummaryWriter
        tb = SummaryWriter(str(out / "tb"), purge_step=state.step if ckpt else None)
        print(f"init: {init_info['source']}")
        print(f"device: {device}, autocast {dtype_name(dtype) or 'off (fp32)'}"
              f" (solver.amp={cfg.solver.amp})")
        test = inference_sizes(cfg.model)
        trains_at = "|".join(map(str, cfg.model.train_min_sizes)) or cfg.model.min_size
        if test != (cfg.model.min_size, cfg.model.max_size) or cfg.model.train_min_sizes:
            # said once: an overridden min_size does not move it
            print(f"size: trains at {trains_at}/{cfg.model.max_size}, validates and runs at "
                  f"{test[0]}/{test[1]} (model.test_min_size / test_max_size)")
    loader, val_loader, gt = loaders(cfg, train_ds, val_ds, state.step, dinfo, device)
    checkpointer = Checkpointer(cfg, init_info, dinfo)
    unfreeze = Unfreeze(cfg.model, ddp_wrapper(dinfo, device), log)
    # the budget first: on the step that sizes the run, the hooks after it see the final step
    hooks = [*([TimeBudget(budget, cfg.solver, distributed.all_reduce_mean if dinfo.enabled else None, log)]
               if budget else []),
             unfreeze, MetricsWriter(cfg.log.log_every, log, tb, dinfo, unfreeze),
             Validation(cfg.log.eval_every, val_loader, gt, out, log, tb, cfg.log.tb_images, checkpointer,
                        cfg.log.best_metric, cfg.model),
             PeriodicCheckpoint(cfg.log.checkpoint_every, out / "last.pt", checkpointer)]
    try:
        train(state, loader, hooks, cfg.solver.clip_grad_norm,
              all_reduce=distributed.all_reduce_mean if dinfo.enabled else None, progress=dinfo.is_main)
    except TrainingDiverged as e:
        last_pt = out / "last.pt"
        good = load_checkpoint(last_pt)["step"] if last_pt.exists() else None
        kept = f"last good checkpoint {last_pt} (step {good})" if good is not None else "no checkpoint written yet"
        print(f"error: training diverged: {e}; {kept}; try a lower solver.lr or longer solver.warmup_iters")
        return 3
    if val_loader is None and dinfo.is_main:
        checkpointer.save(out / "best.pt", state, gather=False)  # no validation: the final weights are the best we know
    distributed.cleanup()
    if dinfo.is_main:
        write_summary(out, cfg, state, start_step, time.time() - state.started, dinfo, init_info, val_loader is not None)
    return 0


def write_summary(out: Path, cfg: TrainConfig, state: TrainState, start_step: int, seconds: float,
                  dinfo: distributed.DistInfo, init_info: dict, validated: bool) -> None:
    """summary.json (the completion marker make waits for) and the closing line."""
    done = state.step - start_step
    spi = seconds / max(1, done)
    head = headline(state.last_metrics, cfg.log.best_metric)
    val = f"; val {head[0]} {head[1]:.3f}" if head else ("; no validation set" if not validated else
                                                        "; validation had no scorable instances")
    best = state.best
    best_s = ("" if not best else f" (best.pt: the last validated step, {best['step']})" if best["metric"] == "last"
              else f" (best {best['metric']} {best['value']:.3f} at step {best['step']})")
    loss_s = f"loss {state.first_loss:.3f} -> {state.last_loss:.3f}" if state.first_loss is not None else "no steps run"
    atomic_write_json(out / "summary.json", {
        "step": state.step, "max_iters": cfg.solver.max_iters, "steps_this_session": done,
        "s_per_it": round(spi, 4), "train_time": round(state.train_time, 2), "world_size": dinfo.world_size,
        "device": str(state.device), "autocast": dtype_name(state.dtype),
        "first_loss": state.first_loss, "last_loss": state.last_loss,
        "final_metrics": state.last_metrics, "best": best, "init": init_info}, indent=2)
    print(f"trained {done} steps ({state.step}/{cfg.solver.max_iters}) in {seconds:.0f} s "
          f"({spi:.2f} s/it, {dinfo.world_size} process(es), {state.device}); {loss_s}{val}; "
          f"checkpoints in {out}{best_s}")


if __name__ == "__main__":
    run_cli(main)
