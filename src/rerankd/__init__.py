"""rerankd: a self-hosted inference engine for rerankers.

Importing the package gives the SDK only (no torch): `Client`, `AsyncClient`, `Item`.
"""

from rerankd.client import APIError, AsyncClient, Client, RerankResult, ScoreResult
from rerankd.core.types import Item

__version__ = "0.1.0"

__all__ = ["APIError", "AsyncClient", "Client", "Item", "RerankResult", "ScoreResult", "__version__"]
