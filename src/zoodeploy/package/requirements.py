"""What a device needs to run a bundle: the oldest onnxruntime that loads its model, and the rest."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import onnx

from zoodeploy.errors import ArtifactError

PYTHON = ">=3.9"  # predict.py and preprocess.py use nothing newer
# floors: old enough for most device images, new enough for every API the two files call
NUMPY, PILLOW = ">=1.23", ">=9.1"
# ONNX Runtime release -> the newest ai.onnx opset, ai.onnx.ml opset and ONNX IR version it
# implements, from the version matrix in onnxruntime's docs/reference/compatibility.md. A model
# past the end of the table needs the onnxruntime it was made and verified with.
ORT_SUPPORT = [((1, 12), 17, 3, 8), ((1, 14), 18, 3, 8), ((1, 15), 19, 3, 8), ((1, 16), 19, 3, 9),
               ((1, 17), 20, 4, 9), ((1, 18), 21, 4, 10)]
# ORT format version -> a release that reads it: v5 from the docs ("ORT model format", backwards
# compatibility: 1.13); v6, which the docs do not date, read by onnxruntime 1.19.2 here (a
# bundle's self-check under Python 3.9). An unknown format needs the release that verified it.
ORT_FORMAT_SUPPORT = {"5": "1.13", "6": "1.19"}
STANDARD_DOMAINS = ("ai.onnx", "ai.onnx.ml")


@dataclass(frozen=True)
class ModelFormat:
    """What a model file asks of the runtime: its opsets, IR version, or the ORT that wrote it."""

    opsets: dict[str, int]  # declared: domain ("ai.onnx", "com.microsoft", ...) -> version
    used_domains: frozenset[str]  # the domains of the graph's nodes
    ir_version: int | None  # None for an ORT-format model
    ort_format_version: str | None  # ORT format version of an .ort file


def read_format(path: Path) -> ModelFormat:
    """Opsets and versions recorded in an .onnx or .ort file."""
    if path.suffix == ".ort":
        return _read_ort(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ArtifactError(f"{path} is not a readable ONNX model ({type(e).__name__}); re-make the variant") from None
    opsets = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    used = frozenset(n.domain or "ai.onnx" for n in _nodes(model.graph))
    return ModelFormat(opsets=opsets, used_domains=used, ir_version=int(model.ir_version), ort_format_version=None)


def _nodes(graph: onnx.GraphProto):
    """Every node, subgraphs (If / Loop / Scan bodies) included."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _nodes(sub)


def _read_ort(path: Path) -> ModelFormat:
    import onnxruntime.tools.ort_format_model  # noqa: F401  (puts ORT's flatbuffers schema on sys.path)
    import ort_flatbuffers_py.fbs as fbs
    buf = bytearray(path.read_bytes())
    if not fbs.InferenceSession.InferenceSession.InferenceSessionBufferHasIdentifier(buf, 0):
        raise ArtifactError(f"{path} is not an ORT-format model; re-make it with `zoodeploy optimize --ort-format`")
    session = fbs.InferenceSession.InferenceSession.GetRootAsInferenceSession(buf, 0)
    model = session.Model()
    opsets = {}
    for i in range(model.OpsetImportLength()):
        o = model.OpsetImport(i)
        opsets[(o.Domain() or b"").decode() or "ai.onnx"] = int(o.Version())
    return ModelFormat(opsets=opsets, used_domains=frozenset(opsets), ir_version=int(model.IrVersion()),
                       ort_format_version=(session.OrtVersion() or b"").decode() or None)


def _release(version: str) -> tuple[int, int]:
    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in version.split(".")[:2]]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def min_onnxruntime(fmt: ModelFormat, built_with: str) -> tuple[str, str]:
    """(">=X.Y", why) — the oldest onnxruntime that can load a model of this format."""
    here = "%d.%d" % _release(built_with)
    if fmt.ort_format_version:
        release = ORT_FORMAT_SUPPORT.get(fmt.ort_format_version)
        why = f"ORT format version {fmt.ort_format_version}"
        return (f">={release}", why) if release else (f">={here}", f"{why} (newer than the docs' table)")
    extra = sorted(d for d in fmt.used_domains if d not in STANDARD_DOMAINS)
    # a declared but unused ai.onnx.ml import (ORT's quantizer adds one) does not stop older releases
    opset = fmt.opsets.get("ai.onnx", 0)
    ml = fmt.opsets.get("ai.onnx.ml", 0) if "ai.onnx.ml" in fmt.used_domains else 0
    why = f"ai.onnx opset {opset}" + (f", ai.onnx.ml opset {ml}" if ml else "") + f", IR version {fmt.ir_version}"
    if extra:  # contrib operators change between releases: ask for the one that was verified
        return f">={here}", f"{why}, operators from {', '.join(extra)}"
    for release, max_opset, max_ml, max_ir in ORT_SUPPORT:
        if opset <= max_opset and ml <= max_ml and (fmt.ir_version or 0) <= max_ir:
            return f">={release[0]}.{release[1]}", why
    return f">={here}", f"{why} (newer than the compatibility table)"


def runtime_requirements(model: Path, built_with: dict[str, str]) -> dict:
    """The manifest's `runtime` block: requirements, why, and the versions it was built with."""
    fmt = read_format(model)
    ort_spec, why = min_onnxruntime(fmt, built_with["onnxruntime"])
    return {"python": PYTHON,
            "requirements": {"onnxruntime": ort_spec, "numpy": NUMPY, "pillow": PILLOW},
            "why": {"onnxruntime": f"{model.name}: {why}"},
            "built_with": {"python": platform.python_version(), **built_with},
            "opsets": fmt.opsets, "ir_version": fmt.ir_version}


# the settings an OpenVINO bundle compiles with; threads are the device's (predict.py --threads)
OPENVINO_KEYS = ("PERFORMANCE_HINT", "INFERENCE_PRECISION_HINT", "NUM_STREAMS")


def openvino_requirements(runtime: dict, settings: dict) -> dict:
    """The `runtime` block of a bundle that OpenVINO runs (`settings`: its runner's): openvino in
    place of onnxruntime, at the release it was verified with, and the config predict.py compiles with."""
    release = ".".join(settings["version"].split(".")[:2])
    config = {k: v for k, v in settings.get("config", {}).items() if k in OPENVINO_KEYS}
    rest = {k: v for k, v in runtime["requirements"].items() if k != "onnxruntime"}
    return {**runtime, "engine": "openvino", "openvino_config": config,
            "requirements": {"openvino": f">={release}", **rest},
            "why": {"openvino": f"the release the bundle's samples were verified with ({settings['version']})"},
            "built_with": {**runtime["built_with"], "openvino": settings["version"]}}


def requirements_txt(runtime: dict) -> str:
    lines = ["# Runtime of this zoodeploy bundle: pip install -r requirements.txt",
             "# built and verified with: " + ", ".join(f"{k} {v}" for k, v in runtime["built_with"].items())]
    return "\n".join(lines + [f"{name}{spec}" for name, spec in runtime["requirements"].items()]) + "\n"
