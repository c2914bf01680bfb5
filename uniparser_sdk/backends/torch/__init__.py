"""PyTorch backend: ``.pth`` / ``.pt`` checkpoints run through the same end-to-end module that is exported."""
from .runner import TorchBackend

__all__ = ["TorchBackend"]
