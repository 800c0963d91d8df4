"""Fine-tune Mask R-CNN on a COCO dataset.

    python -m pipeline.train --config configs/train.yaml --data DATASET_DIR --out RUN_DIR \
        [--max-iters N] [--resume] [key=value ...]

Writes RUN_DIR/config.yaml (resolved config), last.pt (every log.checkpoint_every steps),
best.pt (best validation mask AP), metrics.jsonl and tb/ (DESIGN.md "Runs on disk"), and
summary.json when the run has reached solver.max_iters (a completion marker for make).
`--resume` continues from last.pt exactly: same step, optimizer, schedule, RNG and data order.
Multi-GPU: `torchrun --nproc_per_node N -m pipeline.train ...`.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from pipeline import distributed as D
from pipeline.coco_eval import ground_truth_from_dict
from pipeline.common import (
    CATEGORIES,
    UserError,
    atomic_write_json,
    atomic_write_text,
    atomic_write_with,
    config_to_dict,
    config_to_yaml,
    ensure_writable_dir,
    load_config,
    package_versions,
    parse_class_map,
    run_cli,
)
from pipeline.config import TrainConfig
from pipeline.curves import plot_run
from pipeline.data import CocoDetection, StepSampler, collate_fn, split_ids
from pipeline.engine import (
    TrainingDiverged,
    amp_dtype,
    build_optimizer,
    build_scheduler,
    coco_metrics,
    predict,
    resolve_device,
    train_step,
)
from pipeline.model import (
    build_model,
    calibrate_frozen_bn,
    check_compatible,
    load_checkpoint,
    set_trainable,
    trainable_stages_at,
)
from pipeline.transforms import Augment

BEST_METRIC = ("segm", "AP")  # falls back to bbox AP on box-only validation sets


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
        train = CocoDetection(Path(d.train), ann, aug, d.class_map, d.skip_bad, crowd_targets=d.crowd_targets)
        val = CocoDetection(Path(d.val), None, None, d.class_map, d.skip_bad)
    else:
        probe = CocoDetection(Path(d.train), ann, None, d.class_map, d.skip_bad)
        train_ids, val_ids = split_ids(probe.image_ids, d.val_fraction, d.split_seed)
        train = CocoDetection(Path(d.train), ann, aug, d.class_map, d.skip_bad, image_ids=train_ids,
                              crowd_targets=d.crowd_targets)
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


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, **content) -> None:
    atomic_write_with(path, lambda tmp: torch.save(content, tmp))


class MetricsLog:
    """metrics.jsonl: one JSON object per logged step or evaluation. On resume, records after
    the checkpoint's step are dropped so the file matches the run being continued."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        if resume_step is not None and path.exists():
            keep = [ln for ln in path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            atomic_write_text(path, "".join(ln + "\n" for ln in keep))
        elif resume_step is None:
            atomic_write_text(path, "")

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


def log_images(tb, kept: list[tuple], step: int) -> None:
    from pipeline.draw import draw_detections

    for i, (im, o) in enumerate(kept):
        rgb = (im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        keep = o["scores"] >= 0.5
        masks = (o["masks"][keep, 0] > 0.5).numpy() if "masks" in o else None
        drawn = draw_detections(rgb, o["boxes"][keep].numpy(), o["labels"][keep].numpy(),
                                o["scores"][keep].numpy(), masks)
        tb.add_image(f"val/predictions_{i}", drawn, step, dataformats="HWC")


def validate(model, val_loader, gt, device, dtype, tb, step: int, n_images: int) -> dict | None:
    results, kept = predict(model, val_loader, device, dtype, keep_outputs=n_images)
    try:
        metrics = coco_metrics(gt, results)
    except UserError as e:  # e.g. a validation split holding only negatives
        warnings.warn(f"validation at step {step} skipped: {e}", stacklevel=2)
        return None
    if tb is not None:
        for iou_type, m in metrics.items():
            for k in ("AP", "AP50", "AP75"):
                if m.get(k) is not None:
                    tb.add_scalar(f"val_{iou_type}/{k}", m[k], step)
            for cls, ap in m["per_class"].items():
                if ap is not None:
                    tb.add_scalar(f"val_{iou_type}/AP_{cls}", ap, step)
        log_images(tb, kept, step)
    return metrics


def headline(metrics: dict | None) -> tuple[str, float] | None:
    if not metrics:
        return None
    iou_type = BEST_METRIC[0] if BEST_METRIC[0] in metrics else "bbox"
    value = metrics[iou_type].get(BEST_METRIC[1])
    return (f"{iou_type}_{BEST_METRIC[1]}", float(value if value is not None else 0.0))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = resolve_config(args)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    dinfo = D.init_distributed(device.type)
    device = D.device_for(dinfo, device)
    dtype = amp_dtype(cfg.solver.amp, device)
    out = Path(args.out)
    last_pt, best_pt = out / "last.pt", out / "best.pt"
    if dinfo.is_main:
        ensure_writable_dir(out)
    ckpt = None
    if args.resume:
        ckpt = load_checkpoint(last_pt) if last_pt.exists() else None
        if ckpt is None:
            raise UserError(f"{last_pt}: nothing to resume (no last.pt in {out})")
        check_compatible(ckpt, last_pt, cfg.model.arch)
        if cfg.model.norm == "auto":  # the norm the run resolved at its start
            cfg.model.norm = ckpt["config"]["model"].get("norm", "auto")
        changed = [k for k in changed_keys(ckpt["config"], config_to_dict(cfg)) if k != "solver.max_iters"]
        if changed and dinfo.is_main:
            print(f"note: resuming with changed settings ({', '.join(changed)}): not an exact continuation")
    elif last_pt.exists():
        raise UserError(f"{out} already holds a run (last.pt); pass --resume to continue it or choose another --out")

    train_ds, val_ds, notes = build_datasets(cfg)
    for n in notes:
        if dinfo.is_main:
            print(f"note: {n}")

    torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model_cfg = cfg.model.model_copy(update={"weights": "none"}) if ckpt else cfg.model
    model, init_info = build_model(model_cfg)
    if ckpt:
        model.load_state_dict(ckpt["model"])
        init_info = ckpt["init"]
    cfg.model.norm = init_info.get("norm", cfg.model.norm)  # recorded, so checkpoints rebuild the same net
    model.to(device)
    if (not ckpt and not init_info.get("pretrained") and init_info.get("norm") == "frozen_bn"
            and cfg.model.bn_calibration_images):
        n = calibrate_frozen_bn(model, calibration_batches(train_ds, cfg.model.bn_calibration_images, cfg.seed))
        init_info["bn_calibration"] = f"backbone FrozenBatchNorm2d statistics from {n} training images"
    optimizer = build_optimizer(model, cfg.solver, bool(init_info.get("pretrained")))
    scheduler = build_scheduler(optimizer, cfg.solver)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    step, best, train_time = 0, None, 0.0
    torch.manual_seed(cfg.seed * 1_000_003 + dinfo.rank)  # RPN/ROI sampling differs per rank
    if ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        step, best = int(ckpt["step"]), ckpt.get("best")
        train_time = float(ckpt.get("train_time", 0.0))
        set_rng_state(ckpt["rng"][min(dinfo.rank, len(ckpt["rng"]) - 1)])
        if step >= cfg.solver.max_iters:
            raise UserError(f"{last_pt}: run already at step {step} >= solver.max_iters "
                            f"{cfg.solver.max_iters} (raise --max-iters to train longer)")

    tb = None
    metrics_log = None
    if dinfo.is_main:
        atomic_write_text(out / "config.yaml", config_to_yaml(cfg))
        metrics_log = MetricsLog(out / "metrics.jsonl", step if ckpt else None)
        from torch.utils.tensorboard import SummaryWriter
        tb = SummaryWriter(str(out / "tb"), purge_step=step if ckpt else None)
        print(f"init: {init_info['source']}")

    bs = cfg.data.batch_size
    sampler = StepSampler(len(train_ds), bs, cfg.seed, start_step=step, rank=dinfo.rank,
                          world_size=dinfo.world_size)
    loader = torch.utils.data.DataLoader(
        train_ds, batch_size=bs, sampler=sampler, num_workers=cfg.data.workers, collate_fn=collate_fn,
        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(cfg.seed),
        persistent_workers=False, prefetch_factor=4 if cfg.data.workers else None)
    val_loader, gt = None, None
    if val_ds is not None and dinfo.is_main:
        if cfg.log.val_max_images and len(val_ds) > cfg.log.val_max_images:
            val_ds = CocoDetection(Path(cfg.data.val or cfg.data.train), None if cfg.data.val else
                                   (Path(cfg.data.ann_file) if cfg.data.ann_file else None), None,
                                   cfg.data.class_map, cfg.data.skip_bad,
                                   image_ids=sorted(val_ds.image_ids)[: cfg.log.val_max_images])
        gt = ground_truth_from_dict(val_ds.coco, None, f"validation set ({val_ds.ann_file})")
        val_loader = torch.utils.data.DataLoader(val_ds, batch_size=1, shuffle=False,
                                                 num_workers=min(1, cfg.data.workers), collate_fn=collate_fn,
                                                 generator=torch.Generator().manual_seed(0))

    def checkpoint(path: Path, metrics: dict | None = None, gather: bool = True) -> None:
        """Collective when `gather` (last.pt, which resume reads); rank 0 alone otherwise."""
        rngs = [rng_state()]
        if dinfo.enabled and gather:  # every rank's RNG, so each rank resumes its own stream
            gathered = [None] * dinfo.world_size
            torch.distributed.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if not dinfo.is_main:
            return
        save_checkpoint(path, model=model.state_dict(), optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), scaler=scaler.state_dict() if scaler else None,
                        step=step, rng=rngs, config=config_to_dict(cfg), categories=CATEGORIES,
                        init=init_info, versions=package_versions(), best=best, metrics=metrics,
                        train_time=train_time)

    stages = trainable_stages_at(cfg.model, step)
    set_trainable(model, cfg.model, stages)

    def wrap():
        if not dinfo.enabled:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    net = wrap()
    model.train()
    start_step, t0 = step, time.time()
    first_loss = last_loss = None
    last_metrics = None
    window: list[float] = []
    pbar = tqdm(total=cfg.solver.max_iters, initial=step, disable=not dinfo.is_main, dynamic_ncols=True,
                desc="train")
    it = iter(loader)
    try:
        while step < cfg.solver.max_iters:
            now_stages = trainable_stages_at(cfg.model, step)
            if now_stages != stages:
                stages = now_stages
                set_trainable(model, cfg.model, stages)
                net = wrap()  # DDP fixes its parameter set at construction
                if metrics_log:
                    metrics_log.write({"step": step, "event": "unfreeze", "trainable_stages": stages})
            t_step = time.time()
            images, targets = next(it)
            losses = train_step(net, images, targets, optimizer, scaler, device, dtype,
                                cfg.solver.clip_grad_norm, step,
                                all_reduce=D.all_reduce_mean if dinfo.enabled else None)
            scheduler.step()
            step += 1
            window.append(time.time() - t_step)
            train_time += window[-1]
            first_loss = losses["loss"] if first_loss is None else first_loss
            last_loss = losses["loss"]
            lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
            pbar.set_postfix(loss=f"{losses['loss']:.3f}", lr=f"{lrs['heads']:.2g}",
                             its=f"{len(window) / sum(window):.2f}")
            pbar.update(1)
            if step % cfg.log.log_every == 0 or step == cfg.solver.max_iters:
                if dinfo.enabled:
                    keys = sorted(losses)
                    avg = D.all_reduce_mean(torch.tensor([losses[k] for k in keys], device=device))
                    losses = dict(zip(keys, avg.tolist(), strict=True))
                if dinfo.is_main:
                    rec = {"step": step, **{k: round(v, 6) for k, v in losses.items()},
                           **{f"lr_{k}": v for k, v in lrs.items()}, "trainable_stages": stages,
                           "s_per_it": round(sum(window) / len(window), 4), "time": round(time.time() - t0, 2)}
                    metrics_log.write(rec)
                    for k, v in losses.items():
                        tb.add_scalar(f"train/{k}", v, step)
                    for k, v in lrs.items():
                        tb.add_scalar(f"lr/{k}", v, step)
                window = []
            do_eval = (cfg.log.eval_every and step % cfg.log.eval_every == 0) or step == cfg.solver.max_iters
            if do_eval and val_loader is not None:
                last_metrics = validate(model, val_loader, gt, device, dtype, tb, step, cfg.log.tb_images)
                head = headline(last_metrics)
                if head is not None:
                    metrics_log.write({"step": step, "event": "eval", head[0]: head[1],
                                       "train_time": round(train_time, 2), "wall": round(time.time() - t0, 2),
                                       **last_metrics})
                    plot_run(out)
                    if best is None or head[1] > best["value"]:
                        best = {"metric": head[0], "value": head[1], "step": step}
                        checkpoint(best_pt, last_metrics, gather=False)
            if do_eval:
                D.barrier()
            if step % cfg.log.checkpoint_every == 0 or step == cfg.solver.max_iters:
                checkpoint(last_pt, last_metrics)
    except TrainingDiverged as e:
        pbar.close()
        good = load_checkpoint(last_pt)["step"] if last_pt.exists() else None
        kept = f"last good checkpoint {last_pt} (step {good})" if good is not None else "no checkpoint written yet"
        print(f"error: training diverged: {e}; {kept}; try a lower solver.lr or longer solver.warmup_iters")
        return 3
    finally:
        pbar.close()
        if tb is not None:
            tb.close()
    if val_loader is None and dinfo.is_main:
        checkpoint(best_pt, gather=False)  # no validation set: the final weights are the best we know
    D.cleanup()
    if dinfo.is_main:
        done = step - start_step
        spi = (time.time() - t0) / max(1, done)
        head = headline(last_metrics)
        val = f"; val {head[0]} {head[1]:.3f}" if head else ("; no validation set" if val_loader is None else
                                                            "; validation had no scorable instances")
        best_s = f" (best {best['metric']} {best['value']:.3f} at step {best['step']})" if best else ""
        loss_s = f"loss {first_loss:.3f} -> {last_loss:.3f}" if first_loss is not None else "no steps run"
        atomic_write_json(out / "summary.json", {
            "step": step, "max_iters": cfg.solver.max_iters, "steps_this_session": done,
            "s_per_it": round(spi, 4), "train_time": round(train_time, 2), "world_size": dinfo.world_size, "device": str(device),
            "first_loss": first_loss, "last_loss": last_loss, "final_metrics": last_metrics, "best": best,
            "init": init_info}, indent=2)
        print(f"trained {done} steps ({step}/{cfg.solver.max_iters}) in {time.time() - t0:.0f} s "
              f"({spi:.2f} s/it, {dinfo.world_size} process(es), {device}); {loss_s}{val}; "
              f"checkpoints in {out}{best_s}")
    return 0


if __name__ == "__main__":
    run_cli(main)
