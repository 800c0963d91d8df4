"""Test-time settings of the detector, shared by evaluate, video and export.

The YAML keys are the same in every stage (eval and export keep them at the top level, video
under `model:`); each stage's config subclasses this and re-declares a field only where its
default or meaning differs, saying so.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.common import StrictModel

# torchvision's and detectron2's mask threshold: what a checkpoint without a chosen one runs at
DEFAULT_MASK_THRESHOLD = 0.5


def checkpoint_mask_threshold(ckpt: dict) -> float | None:
    """The mask threshold training chose on its validation set for this checkpoint (the 'segm'
    record of its metrics, pipeline.engine.coco_metrics); None where it chose none."""
    t = ((ckpt.get("metrics") or {}).get("segm") or {}).get("mask_threshold")
    return None if t is None else float(t)


class InferenceSettings(StrictModel):
    device: str = "auto"                     # see pipeline.devices (auto: CUDA if present, else CPU)
    batch_size: int = Field(2, ge=1)         # images per forward pass
    threads: int | None = Field(None, ge=0)  # torch / onnxruntime CPU threads (0 or None: library default)
    half: bool = True                        # fp16 autocast on CUDA; ignored on CPU
    # None keeps what the checkpoint was trained with
    min_size: int | None = Field(None, ge=32)
    max_size: int | None = Field(None, ge=32)
    # RPN proposals kept per image (None: torchvision's 1000). On CPU the box head over the
    # proposals dominates; 300 measured ~4x faster per frame at 640x480.
    rpn_post_nms_top_n: int | None = Field(None, ge=1)
    # per-class box NMS of the detection head: boxes of one class overlapping a higher-scored one
    # at IoU above this are dropped (None: the checkpoint's own, torchvision's 0.5)
    nms_threshold: float | None = Field(None, gt=0, le=1)
    # detections below are dropped by the model (None: the checkpoint's own threshold)
    score_threshold: float | None = Field(None, ge=0, le=1)
    # mask probability -> binary mask. None: the one chosen on the validation set in training
    # (checkpoint_mask_threshold)
    mask_threshold: float | None = Field(None, gt=0, lt=1)
    # test-time augmentation (pipeline.tta): each image also mirrored, and run at every size of
    # tta_sizes (shorter side, px) besides its own; the views fused. Costs a forward pass per view
    tta: bool = False
    tta_sizes: list[int] = []

    @model_validator(mode="after")
    def _tta_sizes_need_tta(self):
        if self.tta_sizes and not self.tta:
            raise ValueError("tta_sizes is set but tta is false: set tta: true to run the extra sizes")
        if any(s < 32 for s in self.tta_sizes):
            raise ValueError(f"tta_sizes: sizes are shorter sides in px (>= 32), got {self.tta_sizes}")
        return self

    def resolve_mask_threshold(self, chosen: float | None) -> tuple[float, str]:
        """(the mask threshold to run a model with, where it comes from): ours if set, else the
        one its training chose (`chosen`), else DEFAULT_MASK_THRESHOLD."""
        if self.mask_threshold is not None:
            return self.mask_threshold, "mask_threshold"
        if chosen is not None:
            return chosen, "chosen on the validation set in training"
        return DEFAULT_MASK_THRESHOLD, "default"

    def mask_threshold_for(self, chosen: float | None) -> float:
        return self.resolve_mask_threshold(chosen)[0]

    def model_options(self) -> dict:
        """Keyword arguments of pipeline.model.set_inference_options."""
        return {"score_threshold": self.score_threshold, "min_size": self.min_size,
                "max_size": self.max_size, "rpn_post_nms_top_n": self.rpn_post_nms_top_n,
                "nms_threshold": self.nms_threshold}
