"""Accuracy and drift on held-out data; the deployment gate."""

from zoodeploy.evaluate.accuracy import (
    accuracy_of,
    eval_splits,
    evaluate_variants,
    run_batched,
    runnable_variants,
)

__all__ = ["accuracy_of", "eval_splits", "evaluate_variants", "run_batched", "runnable_variants"]
