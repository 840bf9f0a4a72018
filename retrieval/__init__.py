"""recagent.retrieval: encoders and the multimodal item index (ChromaDB).

Public API (what ranking/ and agent/ call)::

    from recagent.retrieval import ItemIndex, Filters

    index = ItemIndex.open(cfg, dataset)          # runs.layout(cfg, dataset).index, or cfg.retrieval.chroma_url
    index.build(dataset, progress=True)          # incremental, under the index's write lock
    index.ensure_built(dataset)                  # build on first use, finish an interrupted build, update a stale one
    index.health(dataset)                        # ok / empty / incomplete / stale / damaged (checked once per process)
    index.rebuild(dataset)                       # delete + build: the repair for a damaged store

    hits = index.query_text("space adventure with robots", k=10,
                            include_categories=["Sci-Fi"], exclude_categories=["Horror"],
                            year_min=1970, year_max=1999, exclude_ids=seen_ids)
    hits = index.query_items(liked_ids, k=50)    # neighbours of the centroid of liked items
    hits = index.query_image(pil_or_path, k=10)  # needs CLIP weights (models.clip_checkpoint)
    hits = index.query_text("a red car", channels=["text", "image"])  # several channels, merged
    hits = index.query_vector(vec, k, channel="text", filters=Filters(...))
    index.embeddings(item_ids, channel="text")   # stored vectors, e.g. for ranking features
    index.status()                               # per channel: count + encoder, or why absent

Every query returns ``list[Hit]``: ``Hit.item_id`` (the catalog's original id), ``Hit.score``
(cosine similarity, higher is better) and ``Hit.channel`` (``text``: sentence-transformers on
``catalog.describe``; ``image``: CLIP image tower; ``clip_text``: CLIP text tower on the item
text). The CLIP channels exist only when ``models.clip_checkpoint`` or ``models.clip_pretrained``
is set; otherwise querying them raises ``IndexError_`` saying so. Checkpoint format: see
``recagent.retrieval.clip``.
"""

from recagent.retrieval.encoders import BaseEncoder, Encoder, HashEncoder, TextEncoder, l2_normalize
from recagent.retrieval.filters import Filters, Hit, merge_channels
from recagent.retrieval.index import CHANNELS, BuildReport, Health, ItemIndex

__all__ = ["BaseEncoder", "Encoder", "HashEncoder", "TextEncoder", "l2_normalize", "Filters", "Hit", "merge_channels",
           "CHANNELS", "BuildReport", "Health", "ItemIndex", "ClipEncoder"]


def __getattr__(name: str):
    if name == "ClipEncoder":  # keeps `import recagent.retrieval` free of torch/open_clip
        from recagent.retrieval.clip import ClipEncoder

        return ClipEncoder
    raise AttributeError(name)
