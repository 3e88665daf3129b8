"""Accuracy and drift on held-out data."""

from zoodeploy.evaluate.accuracy import accuracy_of, evaluate_variants, run_batched, test_arrays

__all__ = ["accuracy_of", "evaluate_variants", "run_batched", "test_arrays"]
