"""zoodeploy: the classic CNN zoo from trained PyTorch weights to verified, fast deployments."""

__version__ = "0.1.0"
