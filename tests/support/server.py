"""Test-side name for the server launcher (it lives in the package for `rerankd bench`)."""

from rerankd.bench.server import RunningServer, free_port

__all__ = ["RunningServer", "free_port"]
