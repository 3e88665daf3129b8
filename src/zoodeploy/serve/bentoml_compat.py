"""The one place zoodeploy reaches into BentoML's private modules, checked against its version.

What serving needs and BentoML 1.4 has no public API for:
* where the model store lives (for error messages);
* bounded `/metrics`: BentoML's request metrics label every series with the raw request path, in a
  middleware outside any the service can add, so each path a client invents (`/v2/models/junk1`,
  `junk2`, ...) added series for ever; `bound_metric_endpoints` makes that label the route's template;
* slow connections closed: BentoML starts uvicorn with neither a header timeout (uvicorn has none)
  nor `limit_concurrency`; `guard_connections` gives uvicorn the protocol of `zoodeploy.serve.connections`.
(Adaptive batching no longer uses BentoML's CORK dispatcher: zoodeploy.serve.batching says why.)
Private names can move in any release, so importing this module checks the installed version
against the range these names were written and tested for, and refuses any other with a message
saying what to do.
"""

from __future__ import annotations

import re

from zoodeploy.errors import ZoodeployError

# pyproject.toml pins bentoml>=1.4,<1.5; tests/serve/test_bentoml_compat.py holds both ends
TESTED = ((1, 4), (1, 5))  # [lowest, first untested): compared on (major, minor)
USED = ("bentoml._internal.configuration.containers.BentoMLContainer.model_store_dir",
        "bentoml._internal.server.http.instruments.RunnerTrafficMetricsMiddleware",
        "uvicorn.config.HTTP_PROTOCOLS (BentoML's workers run uvicorn with http='auto')")


class BentoMLVersionError(ZoodeployError):
    """The installed BentoML is outside the range zoodeploy's use of its internals was tested on."""


def check_version(version: str) -> None:
    """Raise BentoMLVersionError unless `version` is in the TESTED range."""
    match = re.match(r"(\d+)\.(\d+)", version)
    found = (int(match.group(1)), int(match.group(2))) if match else None
    (lo_major, lo_minor), (hi_major, hi_minor) = TESTED
    if found is not None and TESTED[0] <= found < TESTED[1]:
        return
    raise BentoMLVersionError(
        f"bentoml {version} is installed, but zoodeploy's serving uses BentoML internals "
        f"({', '.join(USED)}) written and tested for bentoml>={lo_major}.{lo_minor},<{hi_major}.{hi_minor}; "
        f"install that range (pip install 'bentoml>={lo_major}.{lo_minor},<{hi_major}.{hi_minor}'), or "
        "re-check zoodeploy/serve/bentoml_compat.py against the new release and widen TESTED")


def _installed() -> str:
    import bentoml
    return bentoml.__version__


check_version(_installed())

# after the check: on an untested release these imports may fail or mean something else
from collections.abc import Iterable  # noqa: E402

from bentoml._internal.configuration.containers import BentoMLContainer  # noqa: E402
from bentoml._internal.server.http import instruments  # noqa: E402


def model_store_dir() -> str:
    """Where BentoML keeps its model store (BENTOML_HOME/models unless configured otherwise)."""
    return BentoMLContainer.model_store_dir.get()


# --- bounded /metrics -------------------------------------------------------------------------

# the routes BentoML's app serves itself, beside the service's APIs (Starlette path templates)
BENTOML_ROUTES = ("/", "/docs", "/docs.json", "/healthz", "/livez", "/readyz", "/metrics",
                  "/static_content/{path:path}")
UNMATCHED = "unmatched"  # the one `endpoint` label of every path no route serves
_ORIGINAL_PATH = "zoodeploy.path"  # where the request's own path waits while the metrics see the label
_BENTOML_METRICS = instruments.RunnerTrafficMetricsMiddleware


def endpoint_label(routes: Iterable[str]):
    """label(path) -> the template of the route (of `routes` or BentoML's own) that serves `path`,
    or UNMATCHED: a set of labels as small as the set of routes, whatever clients send."""
    from starlette.routing import compile_path
    templates = [*BENTOML_ROUTES, *routes]
    exact = {t for t in templates if "{" not in t}
    patterns = [(compile_path(t)[0], t) for t in templates if "{" in t]

    def label(path: str) -> str:
        if path in exact:
            return path
        return next((t for regex, t in patterns if regex.match(path)), UNMATCHED)
    return label


def bound_metric_endpoints(routes: Iterable[str]) -> None:
    """Make BentoML's request metrics label each series with the route's template (`routes`: the
    service's own, as Starlette path templates), not the raw path. Call before the app is built
    (at the service module's import)."""
    label = endpoint_label(routes)

    class BoundedEndpointMetrics(_BENTOML_METRICS):
        """BentoML's metrics middleware shown the route's template as the path; the app behind it
        gets the request's own path back."""

        def __init__(self, app, **kwargs):
            super().__init__(_original_path(app), **kwargs)

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http" and scope["path"] != "/metrics":
                templated = label(scope["path"])
                if templated != scope["path"]:
                    scope = {**scope, "path": templated, _ORIGINAL_PATH: scope["path"]}
            await super().__call__(scope, receive, send)

    instruments.RunnerTrafficMetricsMiddleware = BoundedEndpointMetrics


def _original_path(app):
    """`app`, handed the request's own path back (BoundedEndpointMetrics set it aside)."""
    async def restore(scope, receive, send):
        if _ORIGINAL_PATH in scope:
            scope = {**scope, "path": scope[_ORIGINAL_PATH]}
            del scope[_ORIGINAL_PATH]
        await app(scope, receive, send)
    return restore


# --- slow connections ---------------------------------------------------------------------------

def guard_connections(header_timeout: float, max_connections: int | None) -> None:
    """Have uvicorn (as BentoML's workers start it: http='auto') run its HTTP protocol with a header
    deadline and a connection cap (zoodeploy.serve.connections). Call before the server starts."""
    import uvicorn.config
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from zoodeploy.serve.connections import guarded
    uvicorn.config.HTTP_PROTOCOLS["auto"] = guarded(AutoHTTPProtocol, header_timeout, max_connections)


__all__ = ["TESTED", "UNMATCHED", "BentoMLVersionError", "bound_metric_endpoints", "check_version",
           "endpoint_label", "guard_connections", "model_store_dir"]
