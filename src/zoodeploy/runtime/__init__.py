"""Run any variant through one interface: `open_runner(artifact, variant)`."""

from zoodeploy.runtime.backends import open_runner
from zoodeploy.runtime.base import EAGER, InputError, RunOptions, Runner, check_input

__all__ = ["EAGER", "InputError", "RunOptions", "Runner", "check_input", "open_runner"]
