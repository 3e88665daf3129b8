"""Run any variant through one interface: `open_runner(artifact, variant)`."""

from zoodeploy.runtime.backends import open_runner
from zoodeploy.runtime.base import EAGER, InputError, RunOptions, Runner, check_input, needs_gpu

__all__ = ["EAGER", "InputError", "RunOptions", "Runner", "check_input", "needs_gpu", "open_runner"]
