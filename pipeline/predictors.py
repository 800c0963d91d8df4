"""One predictor interface for every checkpoint format: RGB uint8 frames -> list[Detections].

`load_predictor(path, settings)` picks the backend by file type (as Ultralytics' AutoBackend
does): `.pt` -> TorchPredictor (a checkpoint of this project), `.onnx` -> OnnxPredictor (a
graph from pipeline.export). Both take a batch, honour the same InferenceSettings and say
what they run on in `.name`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.common import UserError
from pipeline.detections import Detections
from pipeline.inference_settings import InferenceSettings, checkpoint_mask_threshold

# the ONNX graph's outputs, in order: the contract between pipeline.export and OnnxPredictor
ONNX_OUTPUTS = ["boxes", "labels", "scores", "masks"]
# the graph's metadata entry holding the checkpoint's mask threshold (pipeline.export writes it)
MASK_THRESHOLD_KEY = "mask_threshold"


class Predictor(Protocol):
    name: str

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]: ...


class TorchPredictor:
    """Batched torchvision Mask R-CNN, fp16 autocast on CUDA when `settings.half`."""

    def __init__(self, model, device, settings: InferenceSettings, chosen_mask_threshold: float | None = None):
        import torch

        self.torch = torch
        self.model = model
        self.device = device
        self.half = settings.half and device.type == "cuda"
        self.mask_threshold = settings.mask_threshold_for(chosen_mask_threshold)
        self.name = f"torch {device}{' fp16' if self.half else ''}"

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        torch = self.torch
        tensors = [torch.from_numpy(im).to(self.device, non_blocking=True).permute(2, 0, 1).float().div_(255)
                   for im in images]
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
            outs = self.model(tensors)
        return [Detections.from_torchvision(o, self.mask_threshold) for o in outs]


class OnnxPredictor:
    """onnxruntime on a pipeline.export graph (one image per run: the traced graph is unbatched)."""

    def __init__(self, path: str | Path, settings: InferenceSettings | None = None):
        import onnxruntime as ort

        settings = settings or InferenceSettings()
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: ONNX model not found")
        so = ort.SessionOptions()
        if settings.threads:
            so.intra_op_num_threads = settings.threads
        so.log_severity_level = 3
        device = settings.device
        providers = ["CPUExecutionProvider"]
        # onnxruntime picks devices by provider, not torch.device: auto and cuda* mean CUDA if built in
        if device == "auto" or device.startswith("cuda"):
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            elif device != "auto":
                raise UserError(f"model.device={device} but onnxruntime has no CUDA provider here")
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as e:
            raise UserError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0][:160]})") from None
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        if len(inputs) != 1 or outputs[:4] != ONNX_OUTPUTS:
            raise UserError(f"{path}: not a model from pipeline.export (inputs {[i.name for i in inputs]}, "
                            f"outputs {outputs})")
        self.input_name = inputs[0].name
        # pipeline.export writes the checkpoint's chosen threshold into the graph's metadata
        meta = self.session.get_modelmeta().custom_metadata_map
        self.mask_threshold = settings.mask_threshold_for(
            float(meta[MASK_THRESHOLD_KEY]) if MASK_THRESHOLD_KEY in meta else None)
        self.score_threshold = settings.score_threshold or 0.0
        self.name = f"onnxruntime {self.session.get_providers()[0]}"

    def raw(self, image_chw: np.ndarray) -> dict:
        """The graph's outputs for one float [3, H, W] image in 0..1 (masks as probabilities)."""
        return dict(zip(ONNX_OUTPUTS, self.session.run(ONNX_OUTPUTS, {self.input_name: image_chw}), strict=True))

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        res = []
        for im in images:
            o = self.raw(np.ascontiguousarray(im.transpose(2, 0, 1), dtype=np.float32) / 255.0)
            keep = o["scores"] >= self.score_threshold
            res.append(Detections(boxes=o["boxes"][keep].astype(np.float32),
                                  scores=o["scores"][keep].astype(np.float32),
                                  labels=o["labels"][keep].astype(np.int64),
                                  masks=o["masks"][keep, 0] > self.mask_threshold))
        return res


def _torch_predictor(path: Path, settings: InferenceSettings) -> TorchPredictor:
    import torch

    from pipeline.devices import resolve_device
    from pipeline.model import model_from_checkpoint, set_inference_options
    from pipeline.tta import with_tta

    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = resolve_device(settings.device)
    model, ckpt = model_from_checkpoint(path, device=device)
    # Fewer low-score boxes means fewer masks pasted at full resolution: the costly part on CPU.
    set_inference_options(model, **settings.model_options())
    return TorchPredictor(with_tta(model, settings), device, settings, checkpoint_mask_threshold(ckpt))


def _onnx_predictor(path: Path, settings: InferenceSettings) -> OnnxPredictor:
    if settings.tta:
        raise UserError(f"{path.name}: model.tta runs a .pt checkpoint several times per image; "
                        f"an ONNX graph runs one view (use the checkpoint it was exported from)")
    baked = [k for k in ("min_size", "max_size", "rpn_post_nms_top_n", "nms_threshold")
             if getattr(settings, k) is not None]
    if baked:
        warnings.warn(f"model.{', model.'.join(baked)} ignored for {path.name}: an ONNX graph has "
                      f"them baked in (set them when running pipeline.export)", stacklevel=3)
    return OnnxPredictor(path, settings)


BACKENDS = {".pt": _torch_predictor, ".pth": _torch_predictor, ".onnx": _onnx_predictor}


def load_predictor(path: str | Path, settings: InferenceSettings) -> Predictor:
    """The predictor for a checkpoint file, chosen by its suffix."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    backend = BACKENDS.get(path.suffix.lower())
    if backend is None:
        raise UserError(f"{path}: unknown checkpoint type {path.suffix or '(no suffix)'!r} "
                        f"(expected one of {', '.join(BACKENDS)})")
    return backend(path, settings)
