"""RecBole 1.2.1 peer numbers on ML-100K (``../shared/peer_baselines.md``), measured elsewhere on a
2-core CPU with default hyper-parameters; copied here so reports never read outside the repo."""

from __future__ import annotations

SOURCE = "RecBole 1.2.1, default hyper-parameters, measured elsewhere (peer_baselines.md)"

PEERS: dict[str, dict[str, dict[str, float]]] = {
    "A": {
        "Pop": {"recall@10": 0.0408, "ndcg@10": 0.0285, "mrr@10": 0.0438, "hit@10": 0.1900, "recall@20": 0.0790, "ndcg@20": 0.0424},
        "ItemKNN (k=100)": {"recall@10": 0.2439, "ndcg@10": 0.2010, "mrr@10": 0.2973, "hit@10": 0.6030, "recall@20": 0.3529, "ndcg@20": 0.2336},
        "EASE (reg 250)": {"recall@10": 0.2727, "ndcg@10": 0.2311, "mrr@10": 0.3404, "hit@10": 0.6454, "recall@20": 0.3770, "ndcg@20": 0.2606},
        "BPR (patience 50)": {"recall@10": 0.2391, "ndcg@10": 0.1982, "mrr@10": 0.2965, "hit@10": 0.5881, "recall@20": 0.3554, "ndcg@20": 0.2330},
        "LightGCN (300 epochs)": {"recall@10": 0.2382, "ndcg@10": 0.1992, "mrr@10": 0.2920, "hit@10": 0.5849, "recall@20": 0.3509, "ndcg@20": 0.2319},
        "MultiVAE": {"recall@10": 0.2544, "ndcg@10": 0.2144, "mrr@10": 0.3145, "hit@10": 0.6062, "recall@20": 0.3735, "ndcg@20": 0.2493},
        "NeuMF": {"recall@10": 0.2241, "ndcg@10": 0.1741, "mrr@10": 0.2519, "hit@10": 0.5626, "recall@20": 0.3421, "ndcg@20": 0.2106},
    },
    "B": {
        "Pop (RecBole's batch-deduplicated counts)": {"recall@10": 0.0403, "ndcg@10": 0.0180, "mrr@10": 0.0115, "recall@20": 0.0827, "ndcg@20": 0.0287},
        "Pop (true counts)": {"recall@10": 0.0859, "ndcg@10": 0.0439},
        "BPR": {"recall@10": 0.1241, "ndcg@10": 0.0673, "mrr@10": 0.0502, "recall@20": 0.1951, "ndcg@20": 0.0850},
        "GRU4Rec (3 epochs)": {"recall@10": 0.1580, "ndcg@10": 0.0776, "mrr@10": 0.0535, "recall@20": 0.2481, "ndcg@20": 0.1001},
        "SASRec (3 epochs)": {"recall@10": 0.1760, "ndcg@10": 0.0917, "mrr@10": 0.0662, "recall@20": 0.2715, "ndcg@20": 0.1158},
        "SASRec (6 epochs, best at 4)": {"recall@10": 0.1888, "ndcg@10": 0.1005},
        "BERT4Rec (3 epochs)": {"recall@10": 0.1527, "ndcg@10": 0.0766, "mrr@10": 0.0540, "recall@20": 0.2460, "ndcg@20": 0.1002},
    },
}

BEST_PEER = {"A": ("EASE (reg 250)", 0.2311), "B": ("SASRec (6 epochs, best at 4)", 0.1005)}
