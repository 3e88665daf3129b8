"""One error hierarchy. The CLI prints an error's message as one line and exits 1."""


class ZoodeployError(Exception):
    """Base of every error a user can cause and fix; the message says what and how."""


class UnknownNameError(ZoodeployError):
    """A name (model, variant, pass, runtime) that no registry holds."""


class DataError(ZoodeployError):
    """A data set or image that cannot be used: missing folder, empty class, corrupt file."""


class ImageError(DataError):
    """One image that cannot be decoded or is too large."""


class WeightsError(ZoodeployError):
    """Weights that cannot be found, downloaded or loaded into the architecture."""


class SourceError(ZoodeployError):
    """A model source (callable, exported program, ONNX file, labels, preprocessing) that cannot be used."""


class ArtifactError(ZoodeployError):
    """An artifact directory, card or model file that is missing or inconsistent."""


class ExportError(ZoodeployError):
    """PyTorch to ONNX export failed."""


class ValidationError(ZoodeployError):
    """An artifact failed its check against the reference (export, bundle, engine)."""


class OptimizeError(ZoodeployError):
    """An optimization pass (fusion, quantization, conversion) failed."""


class GateError(ZoodeployError):
    """A deployment gate (accuracy drift, latency regression) failed."""


class MissingDependencyError(ZoodeployError):
    """An optional dependency or device is missing; names what to install."""

    def __init__(self, what: str, install: str):
        super().__init__(f"{what} is not available: {install}")
        self.what = what
        self.install = install


def first_line(e: BaseException, limit: int = 300) -> str:
    """An exception from a library as one line: its first non-empty line (else its type's name),
    at most `limit` characters, for a one-line error of our own."""
    line = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
    return line[:limit]
