"""What every GPU backend shares: checks for a GPU and its packages, engine targets, batch ranges.

Importing this module needs neither a GPU nor any GPU package: each check runs when called and
reports what is missing with how to install it (GPU first, then the package). An engine is tied
to the GPU model and TensorRT version that built it; the card records both (the recipe's
`EngineTarget`) and a mismatched engine is refused with the command that rebuilds it. Used by the TensorRT and
Torch-TensorRT runners and compilers and by ONNX Runtime's TensorRT provider.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from zoodeploy.card import Variant
from zoodeploy.errors import ArtifactError, MissingDependencyError
from zoodeploy.recipes import EngineTarget
from zoodeploy.target import GPU_RUNTIMES

GPU_EXTRA = "pip install 'zoodeploy[gpu]'"


# --- what is installed -------------------------------------------------------------------------

def require_cuda() -> None:
    """Raise MissingDependencyError unless PyTorch sees a CUDA GPU (checked before any GPU library)."""
    import torch
    if torch.cuda.is_available():
        return
    if torch.version.cuda is None:
        raise MissingDependencyError(
            "an NVIDIA CUDA GPU", "this PyTorch build is CPU-only (torch.version.cuda is None); "
            f"install a CUDA build of torch and the gpu extra ({GPU_EXTRA}) on a machine with an NVIDIA GPU")
    raise MissingDependencyError(
        "an NVIDIA CUDA GPU", "torch.cuda.is_available() is False (no GPU or no NVIDIA driver on this "
        f"machine); run on a machine with an NVIDIA GPU and install the gpu extra: {GPU_EXTRA}")


def import_tensorrt() -> ModuleType:
    """The `tensorrt` module, after checking for a GPU; a missing one names the extra to install."""
    require_cuda()
    return import_gpu_package("tensorrt", "TensorRT")


def import_gpu_package(module: str, what: str) -> ModuleType:
    """Import an optional GPU package, or raise MissingDependencyError naming the gpu extra."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        # a package that is installed but cannot load its CUDA libraries raises ImportError too
        why = "is not installed" if isinstance(e, ModuleNotFoundError) and e.name == module else \
            f"cannot be imported ({' '.join(str(e).split())[:200]})"
        raise MissingDependencyError(what, f"the {module} Python package {why}; install the gpu extra: "
                                     f"{GPU_EXTRA}") from None


def cache_dir(kind: str) -> Path:
    """A per-user cache directory (timing caches, ORT TensorRT engines): $XDG_CACHE_HOME/zoodeploy/KIND."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "zoodeploy" / kind


# --- where an engine may run ---------------------------------------------------------------------

def engine_target(variant: Variant) -> EngineTarget:
    """The target an engine variant was built for, as its recipe records it."""
    target = getattr(variant.recipe, "target", None)
    if not isinstance(target, EngineTarget):
        raise ArtifactError(f"variant {variant.name!r} records no valid TensorRT target (GPU and "
                            f"TensorRT version) in the card; {rebuild_hint(variant)}")
    return target


def current_target(tensorrt_version: str, device: int | None = None) -> EngineTarget:
    """The target of this machine's current CUDA device and the given TensorRT version."""
    import torch
    device = torch.cuda.current_device() if device is None else device
    major, minor = torch.cuda.get_device_capability(device)
    return EngineTarget(tensorrt=tensorrt_version, gpu=torch.cuda.get_device_name(device),
                        compute_capability=f"{major}.{minor}")


def rebuild_hint(variant: Variant, artifact: str | Path = "ARTIFACT") -> str:
    backend = str(variant.runtime) if variant.runtime in GPU_RUNTIMES else "tensorrt"  # runtime = --backend name
    return (f"rebuild it on this machine with `zoodeploy compile {artifact} --backend {backend} "
            f"--precision {str(variant.precision)}`")


def check_engine_target(variant: Variant, here: EngineTarget, artifact: str | Path = "ARTIFACT") -> None:
    """Refuse an engine built for another GPU model or TensorRT version, saying how to rebuild it."""
    built = engine_target(variant)
    if built == here:
        return
    what = [w for w, differs in (("TensorRT version", built.tensorrt != here.tensorrt),
                                 ("GPU", (built.gpu, built.compute_capability) != (here.gpu, here.compute_capability)))
            if differs]
    raise ArtifactError(f"engine {variant.name!r} was built for {built.describe()} but this machine has "
                        f"{here.describe()}; TensorRT engines only run on the GPU model and TensorRT "
                        f"version that built them (different {' and '.join(what)}); "
                        f"{rebuild_hint(variant, artifact)}")


# --- batch range -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProfileShapes:
    """One optimization profile for the input: the batch range an engine accepts and is tuned for."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def batches(self) -> tuple[int, int, int]:
        return self.min[0], self.opt[0], self.max[0]

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, d: dict[str, list[int]]) -> ProfileShapes:
        return cls(tuple(d["min"]), tuple(d["opt"]), tuple(d["max"]))


def profile_shapes(input_dims: list[int | str | None], max_batch: int, opt_batch: int | None = None) -> ProfileShapes:
    """min 1 / opt / max batch for an NCHW input whose batch dim is symbolic (or fixed: then exactly it).

    `opt_batch` defaults to 8 (a typical serving batch), never above `max_batch`; TensorRT
    picks kernels for `opt` and accepts anything in [min, max].
    """
    if len(input_dims) != 4 or not all(isinstance(d, int) and d > 0 for d in input_dims[1:]):
        raise ArtifactError(f"the model input must be N x C x H x W with fixed C, H, W; got {input_dims}")
    if max_batch < 1 or (opt_batch is not None and not 1 <= opt_batch <= max_batch):
        raise ArtifactError(f"need 1 <= opt batch <= max batch, got opt {opt_batch}, max {max_batch}")
    chw = tuple(int(d) for d in input_dims[1:])
    batch = input_dims[0]
    if isinstance(batch, int) and batch > 0:  # exported with a fixed batch: the engine takes exactly it
        lo = opt = hi = batch
    else:
        lo, hi = 1, max_batch
        opt = opt_batch or min(8, max_batch)
    return ProfileShapes((lo, *chw), (opt, *chw), (hi, *chw))


def batch_chunks(n: int, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """(start, stop, padded size) slices covering n rows, each padded up to lo and at most hi."""
    out = []
    for start in range(0, n, hi):
        stop = min(start + hi, n)
        out.append((start, stop, max(stop - start, lo)))
    return out


def run_chunked(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """`run` over x in slices the engine's profile accepts (zero-padded below `lo`, since images are
    independent in eval mode), outputs concatenated."""
    outs = []
    for start, stop, size in batch_chunks(len(x), lo, hi):
        part = x[start:stop]
        if size > len(part):
            part = np.concatenate([part, np.zeros((size - len(part), *x.shape[1:]), x.dtype)])
        outs.append(run(part)[: stop - start])
    return np.concatenate(outs)
