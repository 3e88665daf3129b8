"""Run any variant through one interface: `open_runner(artifact, variant)`."""

from zoodeploy.runtime.base import (EAGER, InputError, RunOptions, Runner, check_input, needs_gpu,
                                    open_runner)

__all__ = ["EAGER", "InputError", "RunOptions", "Runner", "check_input", "needs_gpu", "open_runner"]
