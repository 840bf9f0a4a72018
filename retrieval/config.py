"""Config section ``[retrieval]``: encoders' batching and the ChromaDB index."""

from __future__ import annotations

from dataclasses import dataclass

from recagent.config import opt


@dataclass(frozen=True)
class RetrievalConfig:
    chroma_url: str = opt("", "Chroma server URL (e.g. http://127.0.0.1:8000); empty = embedded store in the run dir")
    batch_size: int = opt(64, "items embedded per encoder batch", min=1)
    hnsw_ef_construction: int = opt(200, "HNSW build-time beam width; higher = better recall, slower build", min=1)
    hnsw_ef_search: int = opt(800, "HNSW query-time beam width; higher = better recall, slower queries. Measured "
                                   "(benchmarks/retrieval.py): real ML-100K embeddings recall@10 0.9995 at 800; random "
                                   "384-d vectors (worst case) 0.58/0.95/0.995 at 100/400/1000 (20k), 0.80/0.94 at "
                                   "800/1500 (100k). Applied when a process opens the index", min=1)
    hnsw_m: int = opt(32, "HNSW graph degree (links per node)", min=2)
    lock_timeout: float = opt(300.0, "seconds a process waits for another one building or rebuilding the same "
                                     "index (one writer at a time) before giving up with a message", min=0)
    candidates: int = opt(200, "candidates fetched per channel before ranking", min=1)
