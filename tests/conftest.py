"""Shared fixtures: small zoo models trained on digits once per session, exported to ONNX.

Set ZOODEPLOY_TEST_CACHE=DIR to keep them across runs while developing; the key includes a
hash of the sources that make them, so a change to training or export retrains.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "zoodeploy"
# epochs that take each model the suite trains past 90% test accuracy on digits (at its default
# input size: 48 px for SqueezeNet, else 32) in seconds to a minute (tests/models/test_train.py)
TEST_EPOCHS = {"lenet5": 10, "mobilenet_v2": 6, "squeezenet1_1": 12, "resnet18": 3}


def pytest_configure(config):
    """Under pytest-xdist (scripts/test.sh runs `-n auto`), each worker gets a core of its own.

    Two workers whose torch and ONNX Runtime thread pools both spread over every core slow each
    other 5-100x (spin-waiting); pinned, each is a one-core machine, and the servers and CLI
    subprocesses it starts inherit that.
    """
    if hasattr(config.option, "loadscopereorder"):  # xdist's own order (most tests first) would
        config.option.loadscopereorder = False  # run the one-test VGG groups last: ours, below
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) <= len(cpus):
        os.sched_setaffinity(0, {cpus[int(worker.removeprefix("gw")) % len(cpus)]})
        os.environ["OMP_NUM_THREADS"] = "1"


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on `path` (a file): one process builds a shared fixture, the others wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _shared_root(tmp_path_factory, name: str) -> Path:
    """A directory all xdist workers of this run share (each has its own basetemp below it)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    root.mkdir(parents=True, exist_ok=True)
    return root


def _source_hash() -> str:
    h = hashlib.sha256()
    for part in ("models", "export", "card.py", "preprocess.py", "fileio.py"):
        p = SRC / part
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


@pytest.fixture(scope="session")
def digits():
    from zoodeploy.models.data import load_splits
    return load_splits("digits")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, digits):
    """trained(name, image_size=None, epochs=None, export=True) -> read-only artifact directory.

    image_size None: what `zoodeploy train` picks for digits (the entry's train_input_size)."""
    from zoodeploy.export import export_artifact
    from zoodeploy.models.train import TrainConfig, train

    cache_root = os.environ.get("ZOODEPLOY_TEST_CACHE")
    root = Path(cache_root) / _source_hash() if cache_root else _shared_root(tmp_path_factory, "trained")
    made: dict[tuple, Path] = {}

    def get(name: str, image_size: int | None = None, epochs: int | None = None,
            export: bool = True) -> Path:
        epochs = epochs or TEST_EPOCHS.get(name, 2)
        image_size = TrainConfig(name, image_size=image_size, epochs=epochs).image_size
        key = (name, image_size, epochs, export)
        if key in made:
            return made[key]
        out = root / f"{name}-{image_size}px-{epochs}ep{'-onnx' if export else ''}"
        with _locked(root / f".{out.name}.lock"):
            _make_trained(out, name, image_size, epochs, export)
        made[key] = out
        return out

    def _make_trained(out: Path, name: str, image_size: int, epochs: int, export: bool) -> None:
        if not (out / "card.json").exists():
            tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            train(TrainConfig(name, image_size=image_size, epochs=epochs), tmp, splits=digits,
                  progress=False)
            if export:
                export_artifact(tmp)
            tmp.rename(out)

    return get


@pytest.fixture(scope="session")
def trained_names() -> list[str]:
    """The models `trained` makes by default (with their TEST_EPOCHS)."""
    return sorted(TEST_EPOCHS)


@pytest.fixture
def artifact(trained, tmp_path):
    """artifact(name, ...) -> a private, writable copy of a trained artifact."""
    def get(name: str, **kw) -> Path:
        dst = tmp_path / name
        shutil.copytree(trained(name, **kw), dst)
        return dst
    return get


# Tiers: markers put on a test from the fixtures it uses (pyproject declares them), so that a new
# test is classified without anyone thinking of it. `scripts/test.sh --quick` leaves them out.
TIER_FIXTURES = {
    "trains": {"trained"},  # artifact, optimized, bundles, served_artifact, ... all come from it
    "server": {"server"},
    "zoo": {"zoo_artifact"},
}
SERVER_CALLS = {"start_server", "ServerProcess", "TritonServer", "refusal"}  # a test that starts a server itself, not through the fixture
# rough seconds on one core, for the order below: per test by its markers, and once per group
# for what a module or session fixture makes (a server; the first trained model it waits for)
ITEM_COST = {"slow": 60, "zoo": 10, "trains": 2}
GROUP_COST = {"server": 30, "trains": 5}


def _tiers(item) -> set[str]:
    used = set(getattr(item, "fixturenames", ()))  # the whole closure: fixtures of fixtures too
    tiers = {tier for tier, fixtures in TIER_FIXTURES.items() if used & fixtures}
    code = getattr(getattr(item, "function", None), "__code__", None)
    if code is not None and SERVER_CALLS & set(code.co_names):
        tiers.add("server")
    return tiers


def _marks(item) -> set[str]:
    return {m.name for m in item.iter_markers()}


def _group_cost(group: list) -> float:
    marks = [_marks(item) for item in group]
    marks = [m for m in marks if "skip" not in m]  # skipped here (no GPU): costs nothing
    per_item = sum(1 + sum(ITEM_COST.get(m, 0) for m in ms) for ms in marks)
    return per_item + sum(cost for tier, cost in GROUP_COST.items() if any(tier in ms for ms in marks))


def _biggest_groups_first(items: list) -> list:
    """Items grouped by xdist_group, the costliest group first (each group's own order kept).

    pytest-xdist hands out whole groups in this order, one or two ahead per worker: with the
    big ones first, the small ones fill in at the end and both workers finish together.
    """
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(item.get_closest_marker("xdist_group").args[0], []).append(item)
    order = sorted(groups.values(), key=lambda g: -_group_cost(g))  # stable: ties keep file order
    return [item for group in order for item in group]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups and `-m` deselects
def pytest_collection_modifyitems(config, items):
    """Tier markers from the fixtures each test uses; `gpu` tests skip without CUDA, `tensorrt`
    tests without TensorRT, cleanly, with a reason; the costliest xdist groups run first.

    Under `--dist loadgroup` a test file without groups of its own runs in one worker, so its
    module fixtures (a server, a trained model) are made once.
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
        for tier in _tiers(item):
            item.add_marker(tier)
    import importlib.util

    import torch
    no_cuda = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA (torch.cuda.is_available() is False)")
    no_trt = pytest.mark.skip(reason="needs TensorRT (pip install 'zoodeploy[gpu]')")
    has_cuda = torch.cuda.is_available()
    has_trt = importlib.util.find_spec("tensorrt") is not None
    for item in items:
        if item.get_closest_marker("gpu") and not has_cuda:  # keywords would match a folder named gpu
            item.add_marker(no_cuda)
        if item.get_closest_marker("tensorrt") and not has_trt:
            item.add_marker(no_trt)
    items[:] = _biggest_groups_first(items)


def pytest_collection_finish(session):
    """In a pytest-xdist worker under `--dist loadgroup`: stop at once if the groups did not reach
    the scheduler. pytest 9.2 with pytest-xdist 3.8 drops them without a word
    (pytest-dev/pytest-xdist#1386): the suite then runs ~30% longer."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    lost = [item.nodeid for item in session.items if "@" not in item.nodeid]
    if lost:
        raise pytest.UsageError(
            f"pytest-xdist is not grouping tests under this pytest {pytest.__version__} ({lost[0]} has no "
            "@group): install the versions pyproject.toml allows (bash scripts/setup.sh)")


# The zoo sweep's models are untrained: their test accuracy says nothing, and the sweep's figures
# (agreement, drift, max error against fp32) need images, not many. 3% of digits (50 images,
# 5 per class) instead of a fifth (359): evaluating the big nets at 32 px was most of the
# suite's time. Val (validation at batch 1 and 8) and calibration stay as they are.
ZOO_TEST_FRACTION = 0.03


@pytest.fixture(scope="session")
def zoo_digits():
    from zoodeploy.models.data import load_splits
    return load_splits("digits", test_fraction=ZOO_TEST_FRACTION)


@pytest.fixture
def zoo_artifact(tmp_path, zoo_digits):
    """zoo_artifact(name, image_size=None) -> untrained (random-init) artifact on digits, exported.

    For tests that sweep the whole zoo: training 28 models would take too long, and export,
    fusion and quantization are checked against the model's own fp32 outputs anyway. Removed
    after the test: the zoo's checkpoints, graphs and variants together fill gigabytes.
    """
    from zoodeploy.export import export_artifact
    from zoodeploy.models.train import init_artifact
    from zoodeploy.models.zoo import get_spec

    def get(name: str, image_size: int | None = None) -> Path:
        import torch
        size = image_size or max(32, get_spec(name).min_input_size)
        out = tmp_path / "zoo" / f"{name}-{size}px"
        if not (out / "card.json").exists():
            torch.manual_seed(0)
            init_artifact(name, out, image_size=size, splits=zoo_digits)
            export_artifact(out)
        return out

    yield get
    shutil.rmtree(tmp_path / "zoo", ignore_errors=True)


@pytest.fixture(scope="session")
def optimized(trained, tmp_path_factory):
    """optimized(name) -> read-only trained artifact with the real `fused` and `int8` variants
    (optimize() on 1 thread, without accuracy control or timing); copy it before changing it."""
    from zoodeploy.optimize import OptimizeConfig, optimize
    root = _shared_root(tmp_path_factory, "optimized")

    def get(name: str) -> Path:
        out = root / name
        with _locked(root / f".{name}.lock"):
            if not (out / "card.json").exists():
                tmp = root / f"{name}.partial-{os.getpid()}"
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(trained(name), tmp)
                optimize(tmp, OptimizeConfig(passes=("fuse", "int8"), max_drop=None, bench=False, threads=1))
                tmp.rename(out)
        return out

    return get


@pytest.fixture(scope="session")
def triton_home():
    """A real `tritonserver` (NVIDIA's PyTriton wheel, tests/triton_server.py), installed once per machine;
    the test skips with the reason where it cannot be installed."""
    from triton_server import TritonUnavailable, triton_install
    try:
        return triton_install()
    except TritonUnavailable as e:
        pytest.skip(str(e))
