#!/usr/bin/env python3
"""Runtime-only predictor of a zoodeploy edge bundle: classify images, or check the bundle.

    python predict.py IMAGE [IMAGE ...] [--top-k K] [--json] [--threads N]
    python predict.py --self-check [--json]

Needs only onnxruntime (openvino for a bundle OpenVINO runs), numpy and pillow (requirements.txt).
Preprocessing is preprocess.py beside this file: a verbatim copy of the code that trained and
evaluated the model.

Every run first checks each file against the sha256 in manifest.json; `--self-check` then
runs the sample images and compares them with the outputs recorded when the bundle was made.
Exit codes: 0 ok, 1 a failed check or bad input, 3 a missing or too old runtime package.

zoodeploy ships this very file and uses its checks in `zoodeploy verify-bundle`.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if not __package__ and sys.path and os.path.abspath(sys.path[0] or ".") == _HERE:
    # Nothing beside this script is imported before its hash is checked: a stray json.py or
    # numpy.py in the bundle folder would otherwise shadow the real module.
    del sys.path[0]

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
from pathlib import Path, PurePosixPath  # noqa: E402
from typing import Any, Dict, List, Optional  # noqa: E402

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"  # `zoodeploy package --sign KEY`: base64 Ed25519 signature of manifest.json's bytes
FORMAT = "zoodeploy-bundle"
FORMAT_VERSION = 1
MODEL_INFO = "model.json"
EXPECTED = "samples/expected.json"
# the requirements a bundle may name -> the distributions that provide each (read from their
# installed metadata: nothing a manifest names is ever imported to learn its version)
DISTRIBUTIONS = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml",
                                 "onnxruntime-qnn", "ort-nightly"),
                 "openvino": ("openvino",), "numpy": ("numpy",), "pillow": ("pillow", "Pillow", "pillow-simd")}
EXIT_FAILED, EXIT_MISSING_RUNTIME = 1, 3

if __package__:  # inside zoodeploy: part of its one error hierarchy
    from zoodeploy.errors import ValidationError as _Base
else:  # inside a bundle, where zoodeploy is not installed
    _Base = Exception


class BundleError(_Base):
    """The bundle or the device fails a check; the message is one line saying what and how."""


class MissingRuntime(BundleError):
    """A runtime package is missing or too old; the message names what to pip install."""


# ---------------------------------------------------------------- files and hashes

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(root: Path) -> Dict[str, Any]:
    """manifest.json of the bundle in `root`, checked to be one this code understands."""
    path = root / MANIFEST
    if path.is_symlink() or not path.is_file():
        raise BundleError(f"{root} has no {MANIFEST}: it is not an (extracted) zoodeploy bundle")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"{MANIFEST} is not valid JSON ({e}); the bundle is corrupt: re-copy it") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{MANIFEST} is not a {FORMAT} manifest; re-copy the bundle")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{MANIFEST} has format version {manifest.get('format_version')!r}; this "
                          f"predictor reads version {FORMAT_VERSION}: use the predict.py of the same bundle")
    if not isinstance(manifest.get("files"), dict) or not manifest["files"]:
        raise BundleError(f"{MANIFEST} lists no files; the bundle is corrupt: re-make it")
    confine(manifest)
    return manifest


def confine(manifest: Dict[str, Any]) -> None:
    """Every path the manifest names is a plain relative path to a file it lists: nothing it
    points at lies outside the bundle or escapes the hash check."""
    listed = manifest["files"]
    bad = [name for name in listed if not isinstance(name, str) or not _is_plain_relative(name)
           or name in (MANIFEST, SIGNATURE) or not isinstance(listed[name], dict)]
    model = manifest.get("model")
    if not isinstance(model, str) or model not in listed or model in bad:
        bad.append(f"model: {model!r}")
    bad += [f"{MODEL_INFO} (required)"] if MODEL_INFO not in listed else []
    if bad:
        raise BundleError(f"{MANIFEST} names paths outside its file list or the bundle: {', '.join(map(str, bad))}; "
                          "the bundle was tampered with: re-copy it from a trusted source")


def _is_plain_relative(name: str) -> bool:
    p = PurePosixPath(name)
    return bool(name) and "\\" not in name and not p.is_absolute() and ".." not in p.parts \
        and p.as_posix() == name


def _present_files(root: Path) -> Dict[str, Path]:
    """Every entry under `root` but folders, by its posix path relative to `root`."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = Path(dirpath) / name
            out[full.relative_to(root).as_posix()] = full
    return out


def check_files(root: Path, manifest: Dict[str, Any]) -> int:
    """Every listed file present with its sha256, nothing else; all problems in one error."""
    listed = manifest["files"]
    present = _present_files(root)
    problems = []
    for name, entry in sorted(listed.items()):
        path = present.get(name)
        if not _is_plain_relative(name) or name == MANIFEST:
            problems.append(f"{name} (not a plain relative path)")
        elif path is None:
            problems.append(f"{name} (missing)")
        elif path.is_symlink() or not path.is_file():
            problems.append(f"{name} (not a regular file)")
        elif sha256_file(path) != entry.get("sha256"):
            problems.append(f"{name} (sha256 mismatch: tampered or corrupt)")
    problems += [f"{name} (not in {MANIFEST})"
                 for name in sorted(set(present) - set(listed) - {MANIFEST, SIGNATURE})]
    if problems:
        raise BundleError(f"bundle files fail their check: {'; '.join(problems)}; re-copy the bundle "
                          "from a trusted source or re-make it with `zoodeploy package`")
    return len(listed)


# ---------------------------------------------------------------- runtime packages

def version_tuple(version: str) -> tuple:
    """Leading numeric release of a version string: '1.20.1+cpu' -> (1, 20, 1)."""
    out = []
    for part in version.split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        out.append(int(digits))
        if digits != part:
            break
    return tuple(out)


def _pip_line(requirements: Dict[str, str], names: List[str]) -> str:
    return "pip install " + " ".join(f"'{n}{requirements[n]}'" for n in names)


def require_runtime(manifest: Dict[str, Any]) -> Dict[str, str]:
    """Import each runtime package and check its version; returns the versions in use."""
    runtime = manifest.get("runtime", {})
    requirements: Dict[str, str] = runtime.get("requirements", {})
    python_min = version_tuple(runtime.get("python", ">=3").lstrip(">="))
    if sys.version_info[:len(python_min)] < python_min:
        raise MissingRuntime(f"Python {sys.version.split()[0]} is too old for this bundle: it needs "
                             f"Python {runtime.get('python')}")
    unknown = sorted(str(d) for d in requirements if d not in DISTRIBUTIONS)
    if unknown or not all(isinstance(v, str) for v in requirements.values()):
        raise BundleError(f"{MANIFEST} requires {', '.join(unknown) or 'a non-string version'}; a bundle needs only "
                          f"{', '.join(DISTRIBUTIONS)}: the bundle was tampered with")
    versions, missing, old = {"python": sys.version.split()[0]}, [], []
    for dist, spec in requirements.items():
        found = installed_version(dist)
        if found is None:
            missing.append(dist)
            continue
        versions[dist] = found
        if version_tuple(versions[dist]) < version_tuple(spec.lstrip(">=")):
            old.append(dist)
    if missing or old:
        what = "; ".join([f"{n} is not installed" for n in missing] +
                         [f"{n} {versions[n]} is older than {requirements[n]}" for n in old])
        raise MissingRuntime(f"{what}: {_pip_line(requirements, missing + old)} "
                             "(or pip install -r requirements.txt)")
    return versions


def installed_version(requirement: str) -> Optional[str]:
    """The installed version of a known requirement, from distribution metadata (never an import)."""
    from importlib import metadata
    for dist in DISTRIBUTIONS[requirement]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


# ---------------------------------------------------------------- signature

def verify_signature(root: Path, public_key: bytes) -> str:
    """Check manifest.sig against manifest.json with an Ed25519 public key (PEM, or the 32 raw
    bytes); returns the key's fingerprint. The manifest holds every file's sha256, so a valid
    signature vouches for the whole bundle."""
    import base64
    import binascii
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        raise MissingRuntime("checking a signature needs the cryptography package: pip install cryptography") from None
    try:
        key = (Ed25519PublicKey.from_public_bytes(public_key) if len(public_key) == 32
               else serialization.load_pem_public_key(public_key))
    except ValueError as e:
        raise BundleError(f"the key is not an Ed25519 public key in PEM ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"the key is a {type(key).__name__}, not an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    fingerprint = "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]
    sig_path = root / SIGNATURE
    if sig_path.is_symlink() or not sig_path.is_file():
        raise BundleError(f"the bundle has no {SIGNATURE}: it is not signed, so it cannot be checked against key "
                          f"{fingerprint}")
    try:
        signature = base64.b64decode(sig_path.read_bytes().strip(), validate=True)
        key.verify(signature, (root / MANIFEST).read_bytes())
    except (InvalidSignature, binascii.Error, ValueError):
        raise BundleError(f"{SIGNATURE} does not match {MANIFEST} under key {fingerprint}: the bundle was altered "
                          "after signing, or signed with another key") from None
    return fingerprint


def _preprocess_module():
    """The card's preprocessing code: zoodeploy's own, or the bundle's verbatim copy of it."""
    if __package__:
        from zoodeploy import preprocess
        return preprocess
    sys.dont_write_bytecode = True  # a __pycache__ folder would be a file the manifest lacks
    sys.path.insert(0, _HERE)
    import preprocess
    return preprocess


# ---------------------------------------------------------------- the model

class Predictor:
    """The bundle's model with its preprocessing: image files -> class probabilities."""

    def __init__(self, root: Path, manifest: Dict[str, Any], threads: Optional[int] = None):
        import numpy as np
        self.np = np
        self.pre = _preprocess_module()
        self.files = frozenset(manifest["files"])
        self.signed_by: Optional[str] = None  # the key fingerprint open_bundle checked the signature with
        info = json.loads((root / MODEL_INFO).read_text(encoding="utf-8"))
        self.labels: List[str] = info["labels"]
        self.preprocessing = self.pre.Preprocessing.from_dict(info["preprocessing"])
        runtime = manifest.get("runtime", {})
        if runtime.get("engine") == "openvino":
            self.session = OpenVinoSession(root / manifest["model"], runtime.get("openvino_config", {}), threads)
        else:
            self.session = _ort_session(root / manifest["model"], threads)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = {"tensor(float16)": np.float16, "tensor(uint8)": np.uint8}.get(inp.type, np.float32)
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def logits(self, x) -> Any:
        """float32 (N, 3, H, W) -> float32 logits, in chunks when the graph has a fixed batch."""
        np = self.np
        step = self.fixed_batch or len(x)
        out = []
        for i in range(0, len(x), step):
            chunk = x[i:i + step]
            n = len(chunk)
            if n < step:  # pad a fixed-batch graph's last chunk, then drop the padding
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - n, axis=0)])
            y = self.session.run(None, {self.input_name: chunk.astype(self.input_dtype)})[0]
            out.append(np.asarray(y[:n], np.float32))
        return np.concatenate(out)

    def image_logits(self, images: List[Path]) -> Any:
        """Image files -> float32 logits, through the bundle's own preprocessing."""
        pre = self.pre
        try:
            loaded = [pre.load_image(p) for p in images]
        except pre.ImageError as e:  # zoodeploy's ImageError where it is installed, else a ValueError
            raise BundleError(str(e)) from None
        return self.logits(pre.preprocess_batch(loaded, self.preprocessing))

    def probabilities(self, images: List[Path]) -> Any:
        return self.pre.softmax(self.image_logits(images))


def _ort_session(path: Path, threads: Optional[int]):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph / NotImplemented
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise BundleError(f"onnxruntime {ort.__version__} cannot load {path.name}: {first}; "
                          f"install the version in requirements.txt") from None


class OpenVinoSession:
    """OpenVINO's CPU plugin behind the two calls Predictor makes of an ONNX Runtime session
    (`get_inputs`, `run`), compiled with the settings the bundle was verified with."""

    def __init__(self, path: Path, config: Dict[str, str], threads: Optional[int]):
        import types

        import openvino as ov
        config = {**config, **({"INFERENCE_NUM_THREADS": str(threads)} if threads else {})}
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except RuntimeError as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise BundleError(f"openvino {ov.__version__} cannot load {path.name}: {first}; "
                              f"install the version in requirements.txt") from None
        self.request = self.compiled.create_infer_request()
        port = self.compiled.input(0)
        dims = list(port.get_partial_shape())
        self.inputs = [types.SimpleNamespace(name=port.any_name, type="tensor(float)",
                                             shape=[d.get_length() if d.is_static else None for d in dims])]

    def get_inputs(self) -> List[Any]:
        return self.inputs

    def run(self, outputs, feed: Dict[str, Any]) -> List[Any]:
        self.request.infer({0: next(iter(feed.values()))})
        return [self.request.get_output_tensor(0).data.copy()]


def open_bundle(root: Path, threads: Optional[int] = None, key: Optional[bytes] = None):
    """Check a bundle's files (and signature, given a public key) and runtime, then load it:
    (manifest, versions, Predictor)."""
    manifest = load_manifest(root)
    signed_by = verify_signature(root, key) if key is not None else None
    check_files(root, manifest)
    versions = require_runtime(manifest)
    predictor = Predictor(root, manifest, threads)
    predictor.signed_by = signed_by
    return manifest, versions, predictor


def top_k(labels: List[str], probs, k: int) -> List[Dict[str, Any]]:
    order = sorted(range(len(probs)), key=lambda i: -float(probs[i]))[:k]
    return [{"index": i, "label": labels[i], "prob": float(probs[i])} for i in order]


# ---------------------------------------------------------------- the self-check

def compare_sample(expected: Dict[str, Any], got, atol: float) -> Dict[str, Any]:
    """One sample's outputs against the recorded ones: top-1 and every probability."""
    want = [float(p) for p in expected["probabilities"]]
    diff = max(abs(float(g) - w) for g, w in zip(got, want)) if len(got) == len(want) else float("inf")
    got_top1 = max(range(len(got)), key=lambda i: float(got[i]))
    ranked = sorted(want, reverse=True)
    margin = ranked[0] - ranked[1] if len(ranked) > 1 else 1.0
    # a top-1 swap is a failure unless the two best classes were closer than the tolerance allows
    top1_ok = got_top1 == expected["top1"] or margin < 2 * atol
    return {"file": expected["file"], "expected_top1": expected["top1"], "got_top1": got_top1,
            "max_abs_diff": diff, "ok": bool(top1_ok and diff <= atol)}


def machine_isa() -> str:
    """This CPU's ISA name as expected.json's `targets` key it: arm64, x86-64, or the machine."""
    machine = platform.machine().lower()
    return {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86-64", "amd64": "x86-64"}.get(machine, machine)


def expectations(expected: Dict[str, Any]) -> tuple:
    """(samples, prob_atol, where computed): the outputs recorded on this ISA's (emulated) device
    when the bundle carries them, else the build host's."""
    target = expected.get("targets", {}).get(machine_isa())
    if not target:
        return expected["samples"], float(expected["tolerance"]["prob_atol"]), "build host"
    samples = [{**s, "top1": t, "probabilities": p}
               for s, t, p in zip(expected["samples"], target["top1"], target["probabilities"])]
    return samples, float(target["prob_atol"]), f"{machine_isa()} device"


def check_samples(root: Path, predictor: Predictor) -> Dict[str, Any]:
    """Run the bundle's sample images; compare with samples/expected.json."""
    expected = json.loads((root / EXPECTED).read_text(encoding="utf-8"))
    samples, atol, where = expectations(expected)
    listed = predictor.files
    outside = [s.get("file") for s in samples if not isinstance(s.get("file"), str) or s["file"] not in listed]
    if outside:
        raise BundleError(f"{EXPECTED} names sample images that {MANIFEST} does not list: {outside[:3]}; the bundle "
                          "was tampered with")
    probs = predictor.probabilities([root / s["file"] for s in samples])
    results = [compare_sample(s, p, atol) for s, p in zip(samples, probs)]
    return {"prob_atol": atol, "expected_from": where, "samples": results,
            "max_abs_diff": max((r["max_abs_diff"] for r in results), default=0.0)}


def sample_failures(check: Dict[str, Any], labels: List[str]) -> List[str]:
    out = []
    for r in check["samples"]:
        if not r["ok"]:
            out.append(f"{r['file']}: top-1 {labels[r['got_top1']]!r} (expected "
                       f"{labels[r['expected_top1']]!r}), max |dp| {r['max_abs_diff']:.3g}")
    return out


def self_check(root: Path, threads: Optional[int] = None, key: Optional[bytes] = None) -> Dict[str, Any]:
    """Signature (given a key), hashes, runtime, then the samples; raises BundleError naming what failed."""
    manifest, versions, predictor = open_bundle(root, threads, key)
    check = check_samples(root, predictor)
    failures = sample_failures(check, predictor.labels)
    if failures:
        raise BundleError(f"{len(failures)}/{len(check['samples'])} samples differ from the outputs "
                          f"recorded when the bundle was made (tolerance {check['prob_atol']:g} on each "
                          f"probability): {'; '.join(failures)}; this device's runtime computes the "
                          "model differently: install the versions in manifest.json's built_with")
    return {"ok": True, "name": manifest.get("name"), "variant": manifest.get("variant"),
            "target": manifest.get("target"), "files_checked": len(manifest["files"]),
            "signed_by": predictor.signed_by, "runtime": versions, **check}


# ---------------------------------------------------------------- command line

def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="predict.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="*", type=Path, help="image files to classify")
    ap.add_argument("--top-k", type=int, default=5, help="how many classes to print per image")
    ap.add_argument("--json", action="store_true", help="print JSON (with every probability)")
    ap.add_argument("--logits", action="store_true", help="with --json: every logit too (for drift checks)")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    ap.add_argument("--self-check", action="store_true",
                    help="check every file's sha256 and run the bundled samples")
    ap.add_argument("--key", type=Path, default=None,
                    help="Ed25519 public key (PEM): first check manifest.sig, the bundle's signature")
    args = ap.parse_args(argv)
    if not args.images and not args.self_check:
        ap.error("give image files to classify, or --self-check")
    if args.top_k < 1 or (args.threads is not None and args.threads < 1):
        ap.error("--top-k and --threads must be >= 1")
    return args


def _print_self_check(result: Dict[str, Any]) -> None:
    ok = sum(r["ok"] for r in result["samples"])
    print(f"ok: {result['name']} {result['variant']} ({result['target']}): "
          f"{result['files_checked']} files match manifest.json; {ok}/{len(result['samples'])} "
          f"samples match (max |dp| {result['max_abs_diff']:.2g} <= {result['prob_atol']:g}, expected "
          f"outputs from the {result['expected_from']}) with {engine_of(result['runtime'])}"
          + (f"; manifest signed by {result['signed_by']}" if result.get("signed_by") else ""))


def engine_of(versions: Dict[str, str]) -> str:
    """The runtime a bundle ran with, and its version: "onnxruntime 1.20.1" or "openvino 2026.4.1"."""
    name = "openvino" if "openvino" in versions else "onnxruntime"
    return f"{name} {versions.get(name)}"


def _predict(root: Path, args: argparse.Namespace, key: Optional[bytes]) -> None:
    _, _, predictor = open_bundle(root, args.threads, key)
    logits = predictor.image_logits(args.images)
    probs = predictor.pre.softmax(logits)
    k = min(args.top_k, len(predictor.labels))
    rows = [{"image": str(p), "top": top_k(predictor.labels, pr, k),
             "probabilities": [float(v) for v in pr]} for p, pr in zip(args.images, probs)]
    if args.logits:
        for row, lg in zip(rows, logits):
            row["logits"] = [float(v) for v in lg]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{r['image']}\t" + "\t".join(f"{t['label']} ({t['prob'] * 100:.2f}%)" for t in r["top"]))


def main(argv: Optional[List[str]] = None) -> int:
    args = _parse(argv)
    root = Path(_HERE)
    try:
        key = args.key.read_bytes() if args.key else None
        if args.self_check:
            result = self_check(root, args.threads, key)
            if args.json:
                print(json.dumps(result, indent=2))
            else:
                _print_self_check(result)
        else:
            _predict(root, args, key)
    except (BundleError, OSError) as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return EXIT_MISSING_RUNTIME if isinstance(e, MissingRuntime) else EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
