"""The bundle on a "device": a fresh virtual environment with only the bundle's requirements.

No torch, no zoodeploy there (asserted). predict.py classifies the sample images and must give
the top-1 and probabilities of `zoodeploy evaluate`'s path (test split -> runner) on the same
images; a tampered bundle and a missing runtime fail with one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bundle_helpers import unpack
from cli_support import assert_one_line_error

from zoodeploy.artifact import Artifact
from zoodeploy.card import load_card
from zoodeploy.evaluate.accuracy import variant_logits
from zoodeploy.preprocess import softmax

pytestmark = pytest.mark.slow


def _clean_env() -> dict[str, str]:
    """The device sees nothing of this checkout: no PYTHONPATH, no user site-packages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return {**env, "PYTHONNOUSERSITE": "1", "OMP_NUM_THREADS": "1"}


def _base_python() -> str:
    return shutil.which("python3.11") or getattr(sys, "_base_executable", sys.executable)


def _make_venv(where: Path, requirements: list[Path]) -> Path:
    """python3.11 -m venv (no system site-packages), then pip install -r each requirements file."""
    subprocess.run([_base_python(), "-m", "venv", "--without-pip", str(where)], check=True, env=_clean_env())
    python = where / "bin" / "python"
    args = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    for r in requirements:
        args += ["-r", str(r)]
    done = subprocess.run(args, capture_output=True, text=True, env=_clean_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return python


@pytest.fixture(scope="session")
def device(bundles, tmp_path_factory):
    """(python of the device venv, seconds it took to make). Cached in ZOODEPLOY_TEST_CACHE if set."""
    reqs = [unpack(bundles(t), tmp_path_factory.mktemp(f"req-{t}")) / "requirements.txt" for t in ("cpu", "mobile")]
    key = hashlib.sha256(b"".join(r.read_bytes() for r in reqs)).hexdigest()[:12]
    cache = os.environ.get("ZOODEPLOY_TEST_CACHE")
    where = Path(cache) / f"device-venv-{key}" if cache else tmp_path_factory.mktemp("device") / "venv"
    start = time.perf_counter()
    if not (where / ".complete").exists():
        shutil.rmtree(where, ignore_errors=True)
        _make_venv(where, reqs)
        (where / ".complete").write_text("ok\n")
    return where / "bin" / "python", time.perf_counter() - start


def _run(python: Path, root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "predict.py", *args], cwd=root, capture_output=True, text=True,
                          env=env or _clean_env(), timeout=300)


def test_device_venv_has_only_the_runtime(device):
    python, seconds = device
    print(f"device venv ready in {seconds:.1f}s")
    for module in ("torch", "zoodeploy", "onnx", "sklearn"):
        r = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True, env=_clean_env())
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, module
    r = subprocess.run([str(python), "-c", "import onnxruntime, numpy, PIL"], env=_clean_env())
    assert r.returncode == 0


def test_predict_on_device_matches_the_evaluate_path(device, bundles, trained, tmp_path):
    python, _ = device
    root = unpack(bundles("cpu"), tmp_path / "x")
    m = json.loads((root / "manifest.json").read_text())
    files = [s["file"] for s in json.loads((root / "samples/expected.json").read_text())["samples"]]
    r = _run(python, root, *files, "--json", "--top-k", "3")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    # zoodeploy's evaluate path on the same test images: in-memory split -> preprocessing -> runner
    art = trained("lenet5")
    card = load_card(art)
    x, y = Artifact(art).test_data()
    want = softmax(variant_logits(art, "fp32", x[m["samples"]["test_indices"]]))
    assert [g["image"] for g in got] == files
    for g, w in zip(got, want):
        assert g["top"][0]["index"] == int(w.argmax()) and len(g["top"]) == 3
        assert g["top"][0]["label"] == card.labels[int(w.argmax())]
        np.testing.assert_allclose(g["probabilities"], w, atol=1e-5)
    # and the plain output: one line per image, top-1 first
    r = _run(python, root, files[0])
    assert r.returncode == 0 and r.stdout.startswith(f"{files[0]}\t{card.labels[int(want[0].argmax())]} (")


@pytest.mark.parametrize("target", ["cpu", "mobile"])
def test_self_check_passes_on_device(device, bundles, tmp_path, target):
    python, _ = device
    root = unpack(bundles(target), tmp_path / "x")
    r = _run(python, root, "--self-check", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["ok"] and len(result["samples"]) == 8 and all(s["ok"] for s in result["samples"])
    assert result["max_abs_diff"] <= result["prob_atol"]
    assert result["runtime"]["onnxruntime"]  # the device's own runtime ran it
    assert not (root / "__pycache__").exists()  # a second check must still see only listed files
    assert _run(python, root, "--self-check").stdout.startswith("ok: lenet5 fp32")


def test_tampered_bundle_fails_self_check_on_device(device, bundles, tmp_path):
    python, _ = device
    root = unpack(bundles("cpu"), tmp_path / "x")
    data = bytearray((root / "model.onnx").read_bytes())
    data[-100] ^= 0xFF
    (root / "model.onnx").write_bytes(bytes(data))
    assert_one_line_error(_run(python, root, "--self-check"), "model.onnx (sha256 mismatch")
    # classifying refuses too: every run checks the hashes first
    assert_one_line_error(_run(python, root, "samples/00_0.png"), "model.onnx (sha256 mismatch")


def test_missing_runtime_names_the_package_and_version(bundles, tmp_path):
    root = unpack(bundles("cpu"), tmp_path / "x")
    need = json.loads((root / "manifest.json").read_text())["runtime"]["requirements"]
    bare = tmp_path / "bare"
    subprocess.run([_base_python(), "-m", "venv", "--without-pip", str(bare)], check=True, env=_clean_env())
    r = _run(bare / "bin" / "python", root, "--self-check")
    line = assert_one_line_error(r, "onnxruntime is not installed", f"pip install 'onnxruntime{need['onnxruntime']}'",
                                 code=3)
    assert f"'numpy{need['numpy']}'" in line and f"'pillow{need['pillow']}'" in line


def test_too_old_runtime_names_the_version_to_install(device, bundles, tmp_path):
    """An onnxruntime older than requirements.txt asks for (an importable stand-in reporting 1.10.0)."""
    python, _ = device
    root = unpack(bundles("cpu"), tmp_path / "x")
    need = json.loads((root / "manifest.json").read_text())["runtime"]["requirements"]["onnxruntime"]
    old = tmp_path / "old-site" / "onnxruntime"
    old.mkdir(parents=True)
    (old / "__init__.py").write_text("__version__ = '1.10.0'\n")
    info = old.parent / "onnxruntime-1.10.0.dist-info"  # versions are read from distribution metadata
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: onnxruntime\nVersion: 1.10.0\n")
    env = {**_clean_env(), "PYTHONPATH": str(old.parent)}
    assert_one_line_error(_run(python, root, "--self-check", env=env),
                          f"onnxruntime 1.10.0 is older than {need}", f"pip install 'onnxruntime{need}'", code=3)
