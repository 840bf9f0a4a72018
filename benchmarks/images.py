"""Image benchmark: our trained CLIP on the built-in Fashion-MNIST catalog, the image index at
catalog scale, and fusion on a SYNTHETIC multimodal benchmark with known ground truth.

Prints one JSON object (also written to ``<work>/results.json``). Parts (``--parts``):

* ``train``: the default CLIP (``recagent finetune clip --dataset fashion-mnist --split train``):
  wall time, steps, pairs/s and process CPU seconds (on a busy shared machine the CPU seconds
  divided by the threads estimate the wall time on a quiet one). Reused when the checkpoint
  exists (its recorded numbers are reported).
* ``zeroshot``: class accuracy on the 10,000 held-out (test-split) images for several prompt
  schemes (category names, class phrases, caption-grammar ensembles averaged ("mean") or scored
  by the model's softmax mass over the class's sentences ("marginal")); the scheme is chosen by
  accuracy on 5,000 training-split images (``selected_on_validation``), never on held-out ones.
  Image-embedding throughput; text->image Recall@10 of each held-out item's own caption among
  the 10,000 (and among 1,000) held-out images.
* ``search``: precision@10 of ``recagent search "<category>" --channel image`` on the built-in
  ``fashion-mnist-2k`` catalog (test-split photos), for the ten categories, through the real
  index (and once through the real CLI).
* ``index``: every one of the 70,000 images embedded and stored in a Chroma collection with the
  index's HNSW settings: embedding and insert time, recall@10 against exact search and p50/p95
  latency of ``ItemIndex.query_vector`` for text queries and image queries.
* ``fusion``: SYNTHETIC users (``recagent.data.images.simulate_users``) over 3,000 held-out
  items, whose tastes live in class, picture (visual style) and text (material); 15 % of items
  have no text, 15 % no image. FusionRanker NDCG@10 (protocol B, full ranking) with images,
  without, image only, text only, and with 30 % of images removed at test time, with paired
  bootstrap CIs; with "oracle pictures" (the ground-truth class + style coordinates as the image
  embedding: the ceiling of the image channel); repeated with users whose taste ignores the
  pictures (w_image = 0).

Usage: ``nice -n 5 .venv/bin/python benchmarks/images.py [--parts zeroshot,search,index,fusion] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

CATEGORIES = ["T-shirt", "Trousers", "Pullover", "Dress", "Coat", "Sandals", "Shirt", "Sneakers", "Bag", "Ankle boots"]


def _pct(xs) -> dict:
    a = np.asarray(xs) * 1000.0
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def _load_avg() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def part_train(cfg, ckpt_dir: Path, log) -> dict:
    from recagent.finetune.clip_train import META, ClipTrainConfig, train_catalog_clip

    meta = ckpt_dir / META
    if (ckpt_dir / "clip.pt").is_file() and meta.is_file():
        m = json.loads(meta.read_text())
        if m["step"] >= m["total_steps"]:
            out = {"reused": True, "step": m["step"], "pairs": m["pairs"], "config": m["config"],
                   "loss_first": m["losses"][0], "loss_last": m["losses"][-1]}
            run = ckpt_dir / "run.json"
            if run.is_file():
                r = json.loads(run.read_text())
                out.update({k: r[k] for k in ("seconds", "cpu_seconds", "caption", "split", "time") if k in r})
            return out
    t0, c0 = time.perf_counter(), time.process_time()
    res = train_catalog_clip(cfg, "fashion-mnist", ClipTrainConfig(), out_dir=ckpt_dir, split="train", resume=True,
                             caption="text", progress=True, log_fn=log)
    res.update(wall_s=round(time.perf_counter() - t0, 1), cpu_s=round(time.process_time() - c0, 1), load_avg_end=_load_avg())
    return res


def zero_shot_prompts(train_caption_counts: dict[str, int] | None = None) -> dict[str, tuple[list[list[str]], list | None]]:
    """The candidate zero-shot prompt sets, one list of prompts per class (CATEGORIES order), and
    optional per-prompt weights. Ensembles are written in the catalog's caption grammar, as CLIP's
    80 ImageNet templates are: no held-out item's text is used; the optional weights count how
    often each grammar sentence is a training item's caption (the validation items excluded)."""
    import itertools

    from recagent.data.images import CLASSES, SEASON_PHRASE

    looks = list(itertools.product(("slim", "regular", "wide"), ("dark", "mid-grey", "light"), ("plain", "patterned")))
    # 18 sentences per class (cut x tone x surface); "full": x the class's materials x seasons (72-144)
    s18 = [[f"{c[2]}, {cut} cut. {t.capitalize()} tone, {sf} surface." for cut, t, sf in looks] for c in CLASSES]
    full = [[f"{c[2]}, {cut} cut. {t.capitalize()} tone, {sf} surface. Made of {m}; {SEASON_PHRASE[se]}."
             for (cut, t, sf), m, se in itertools.product(looks, c[3], c[4])] for c in CLASSES]
    out = {"name": ([[c] for c in CATEGORIES], None), "a_photo_of": ([[f"a photo of a {c}"] for c in CATEGORIES], None),
           "class_phrase": ([[c[2]] for c in CLASSES], None),
           "caption_template_ensemble": (s18, None), "caption_grammar_ensemble_full": (full, None)}
    if train_caption_counts is not None:
        out["caption_grammar_full[prior]"] = (full, [[train_caption_counts.get(x, 0) for x in per] for per in full])
    return out


def part_zeroshot(enc, ds, log, caption: str = "text", n_valid: int = 5000) -> tuple[dict, np.ndarray]:
    """Zero-shot class accuracy for every prompt scheme on a validation split of the training
    items and on the held-out test items; the scheme with the best validation accuracy is the
    reported one (``selected_on_validation``): held-out images and labels choose nothing."""
    from collections import Counter

    from recagent.finetune.clip_train import caption_text
    from recagent.retrieval.clip import zero_shot_scores

    items = ds.catalog.items
    test = items[items["split"] == "test"].reset_index(drop=True)
    train = items[items["split"] == "train"].reset_index(drop=True)
    t0 = time.perf_counter()
    img = enc.embed_images(list(test["image_path"]), batch_size=256)
    secs = time.perf_counter() - t0
    log(f"embedded {len(test)} held-out images in {secs:.1f} s")
    labels = np.array([CATEGORIES.index(c) for c in test["class"]])
    # the validation split: training items (CLIP was trained on their pictures and captions, so
    # it reads them a little better than new ones; it only ranks prompt schemes)
    vi = np.sort(np.random.default_rng(12).choice(len(train), min(n_valid, len(train)), replace=False))
    v_img = enc.embed_images(list(train["image_path"][vi]), batch_size=256)
    v_labels = np.array([CATEGORIES.index(c) for c in train["class"][vi]])
    rest = np.setdiff1d(np.arange(len(train)), vi)
    counts = Counter(caption_text(t, x, "text") for t, x in zip(train["title"][rest], train["text"][rest]))
    out = {"held_out_images": len(test), "validation_images": len(vi), "image_embed_per_s": round(len(test) / secs, 1),
           "image_embed_batch": 256, "caption": caption, "logit_scale": round(enc.logit_scale, 2)}

    def unit(e):
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    schemes = {}
    prompts = zero_shot_prompts(counts)
    emb = {name: [unit(enc.embed_texts(per)) for per in sets] for name, (sets, _) in prompts.items()
           if name != "caption_grammar_full[prior]"}
    emb["caption_grammar_full[prior]"] = emb["caption_grammar_ensemble_full"]
    centre = np.concatenate(emb["caption_grammar_ensemble_full"]).mean(0)  # eval-time text centring (center_text)
    for name, (sets, weights) in prompts.items():
        e = emb[name]
        variants = [("mean", name, e)] if len(sets[0]) == 1 else [
            ("mean", name, e), ("marginal", name.replace("ensemble", "marginal"), e)]
        if name in ("caption_template_ensemble", "caption_grammar_ensemble_full"):
            ec = [unit(x - centre) for x in e]
            variants += [("mean", f"{name}[centred]", ec), ("marginal", f"{name.replace('ensemble', 'marginal')}[centred]", ec)]
        if weights is not None:
            variants = [("mean", "caption_grammar_ensemble_full[prior]", e), ("marginal", "caption_grammar_marginal_full[prior]", e)]
        for how, label, ee in variants:
            acc = {}
            for split, x, y in (("validation", v_img, v_labels), ("test", img, labels)):
                pred = zero_shot_scores(x, ee, how, enc.logit_scale, weights).argmax(1)
                acc[split] = round(float((pred == y).mean()), 4)
                if split == "test":
                    acc["per_class_test"] = {c: round(float((pred[y == k] == k).mean()), 3) for k, c in enumerate(CATEGORIES)}
            schemes[label] = acc
            log(f"zero-shot {label}: validation {acc['validation']}, test {acc['test']}")
    out["prompt_schemes"] = schemes
    for label, acc in schemes.items():  # the flat keys of earlier runs
        out[f"zero_shot_accuracy[{label}]"] = acc["test"]
    out["per_class_accuracy"] = schemes["name"]["per_class_test"]
    best = max(schemes, key=lambda k: schemes[k]["validation"])
    out["selected_on_validation"] = {"scheme": best, "validation": schemes[best]["validation"], "test": schemes[best]["test"],
                                     "per_class_test": schemes[best]["per_class_test"]}
    out["zero_shot_accuracy[selected]"] = schemes[best]["test"]
    caps = _embed_unique(enc, [caption_text(t, x, caption) for t, x in zip(test["title"], test["text"])])
    for pool in (len(test), 1000):
        sims = caps[:pool] @ img[:pool].T
        own = np.diag(sims)
        rank = (sims > own[:, None]).sum(1)
        out[f"text_to_image_recall@10[pool={pool}]"] = round(float((rank < 10).mean()), 4)
        out[f"text_to_image_recall@10_chance[pool={pool}]"] = round(10 / pool, 4)
    return out, img


def part_search(cfg, enc, work: Path, log) -> dict:
    import subprocess

    from recagent.data import load_dataset
    from recagent.retrieval import ItemIndex

    ds = load_dataset(cfg, "fashion-mnist-2k")
    cls = dict(zip(ds.catalog.items["item_id"], ds.catalog.items["class"]))
    index = ItemIndex.open(cfg, ds, clip_encoder=enc)
    t0 = time.perf_counter()
    # ensure_built notices a new CLIP checkpoint (its fingerprint is in the build record) and
    # re-embeds the image and clip_text channels
    index.ensure_built(ds, progress=False, log_fn=log)
    build_s = time.perf_counter() - t0
    per = {}
    for c in CATEGORIES:
        hits = index.query_text(c, k=10, channels="image")
        per[c] = round(float(np.mean([cls[h.item_id] == c for h in hits])), 2)
    out = {"catalog": "fashion-mnist-2k", "index_build_s": round(build_s, 1),
           "precision@10_mean": round(float(np.mean(list(per.values()))), 4), "precision@10": per}
    cmd = [sys.executable, "-m", "recagent", "search", "ankle boots", "--dataset", "fashion-mnist-2k", "--channel", "image",
           "--json", "--quiet", "--set", f"models.clip_checkpoint={enc.checkpoint_path}"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode == 0:
        got = json.loads(p.stdout)
        rows = got if isinstance(got, list) else got.get("hits", got.get("results", []))
        out["cli_check[ankle boots]"] = {"precision@10": round(float(np.mean([cls[r["item_id"]] == "Ankle boots" for r in rows])), 2),
                                         "titles": [r.get("title") for r in rows[:3]]}
    else:
        out["cli_check[ankle boots]"] = {"error": p.stderr.strip().splitlines()[-1][:300] if p.stderr.strip() else p.returncode}
    return out


def part_index(cfg, enc, ds, test_img: np.ndarray | None, work: Path, n_queries: int, log) -> dict:
    import chromadb
    from chromadb.config import Settings

    from recagent.finetune.clip_train import caption_text
    from recagent.retrieval import ItemIndex

    items = ds.catalog.items
    t0 = time.perf_counter()
    emb = enc.embed_images(list(items["image_path"]), batch_size=256)
    embed_s = time.perf_counter() - t0
    log(f"embedded all {len(items)} images in {embed_s:.1f} s")
    s = cfg.retrieval
    folder = work / "index70k"
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    client = chromadb.PersistentClient(path=str(folder), settings=Settings(anonymized_telemetry=False))
    col = client.create_collection("fashion-mnist-image", embedding_function=None, configuration={"hnsw": {
        "space": "cosine", "max_neighbors": s.hnsw_m, "ef_construction": s.hnsw_ef_construction, "ef_search": s.hnsw_ef_search}})
    ids = items["item_id"].astype(str).tolist()
    metas = [{"item_id": i, "title": t, "categories": [c]} for i, t, c in zip(ids, items["title"], items["class"])]
    step = min(5000, client.get_max_batch_size())
    t0 = time.perf_counter()
    for a in range(0, len(ids), step):
        col.add(ids=ids[a:a + step], embeddings=emb[a:a + step], metadatas=metas[a:a + step])
    insert_s = time.perf_counter() - t0
    index = ItemIndex(client, "fashion-mnist", s, text_encoder=None, clip_encoder=enc)
    rng = np.random.default_rng(0)
    q_items = rng.choice(len(ids), n_queries, replace=False)
    texts = _embed_unique(enc, [caption_text(items["title"][i], items["text"][i], "text") for i in q_items])
    out = {"items": len(ids), "dim": int(emb.shape[1]), "embed_s": round(embed_s, 1),
           "image_embed_per_s": round(len(ids) / embed_s, 1), "insert_s": round(insert_s, 1),
           "build_s": round(embed_s + insert_s, 1), "hnsw": {"m": s.hnsw_m, "ef_construction": s.hnsw_ef_construction,
                                                               "ef_search": s.hnsw_ef_search}}
    index.query_vector(texts[0], 10, "image")  # load the HNSW segment
    for name, qs in (("text_queries", texts), ("image_queries", emb[q_items])):
        exact = np.argsort(-(qs @ emb.T), axis=1, kind="stable")[:, :10]
        lat, rec = [], []
        for q, ex in zip(qs, exact):
            t0 = time.perf_counter()
            hits = index.query_vector(q, 10, "image")
            lat.append(time.perf_counter() - t0)
            rec.append(len({h.item_id for h in hits} & {ids[j] for j in ex}) / 10)
        out[name] = {"queries": len(qs), "recall@10_vs_exact": round(float(np.mean(rec)), 4), **_pct(lat)}
    return out


def part_fusion(cfg, enc, ds70, work: Path, n_items: int, n_users: int, log) -> dict:
    import pandas as pd

    from recagent.data import ReadOptions, load_files, make_split
    from recagent.data.images import simulate_users
    from recagent.eval.bootstrap import paired_bootstrap
    from recagent.eval.protocol import evaluate_scores
    from recagent.ranking.base import History
    from recagent.ranking.fusion import FusionRanker, features_all
    from recagent.retrieval.encoders import TextEncoder

    items = ds70.catalog.items
    test = items[items["split"] == "test"].head(n_items).reset_index(drop=True).copy()
    rng = np.random.default_rng(7)
    no_text = rng.random(len(test)) < 0.15
    no_image = rng.random(len(test)) < 0.15
    test["image_path"] = [None if m else p for p, m in zip(test["image_path"], no_image)]
    test.loc[no_text, "title"] = [f"Item {i}" for i in test.loc[no_text, "item_id"]]
    test.loc[no_text, "text"] = ""
    test["categories"] = test["categories"].map(lambda c: "|".join(c))
    log(f"fusion: {len(test)} items ({int(no_text.sum())} without text, {int(no_image.sum())} without image)")
    text_enc = TextEncoder.from_config(cfg)
    img_all = None
    results = {"items": len(test), "items_without_text": int(no_text.sum()), "items_without_image": int(no_image.sum()),
               "labelled": "SYNTHETIC users and interactions"}
    for scenario, w_image in (("taste_in_pictures", 2.0), ("pictures_carry_no_taste", 0.0)):
        users, inter = simulate_users(test.assign(image_path=None), n_users=n_users, per_user=20, seed=11, w_image=w_image)
        d = work / f"fusion-{scenario}"
        d.mkdir(parents=True, exist_ok=True)
        test.to_csv(d / "items.csv", index=False)
        inter.to_csv(d / "interactions.csv", index=False)
        from dataclasses import fields

        opt = {"check_images": False}
        if "allow_outside_images" in {f.name for f in fields(ReadOptions)}:
            opt["allow_outside_images"] = True  # the photos stay in the built-in catalog's cache folder
        ds = load_files(d / "items.csv", d / "interactions.csv", opts=ReadOptions(**opt), name=f"synthetic-{scenario}")
        cat = ds.catalog.items
        order = [ds.item_index[i] for i in cat["item_id"]]  # catalog row -> dense item index
        n = ds.n_items
        text_emb = np.zeros((n, text_enc.dim), np.float32)
        has_text = (cat["text"] != "").to_numpy()
        if img_all is None:
            t_emb = _cached_text_emb(text_enc, [ds.catalog.describe(i) for i in range(len(cat))], work)
            img_rows = [i for i in range(len(cat)) if isinstance(cat["image_path"][i], str)]
            i_emb = enc.embed_images([cat["image_path"][i] for i in img_rows], batch_size=256)
            img_all = (t_emb, img_rows, i_emb)
        t_emb, img_rows, i_emb = img_all
        for r, o in enumerate(order):
            if has_text[r]:
                text_emb[o] = t_emb[r]
        image_emb = np.zeros((n, i_emb.shape[1]), np.float32)
        has_image = np.zeros(n, bool)
        for k, r in enumerate(img_rows):
            image_emb[order[r]] = i_emb[k]
            has_image[order[r]] = True
        split = make_split(ds, "B")
        users_t = split.users
        trv = History.concat(split.train, split.valid, n_users=split.n_users, n_items=split.n_items)
        # the ceiling: "pictures" whose embedding is the ground truth the users' taste was drawn
        # from (class one-hot + the two style coordinates), same items without an image
        cls_of = cat["class"].map({c: k for k, c in enumerate(CATEGORIES)}).to_numpy()
        oracle = np.zeros((n, len(CATEGORIES) + 2), np.float32)
        for r, o in enumerate(order):
            if has_image[o]:
                oracle[o, cls_of[r]] = 1.0
                oracle[o, len(CATEGORIES):] = (cat["style_1"][r], cat["style_2"][r])
        variants = {
            "with_images": (["itemknn", "text_hist", "image_hist", "pop"], image_emb),
            "without_images": (["itemknn", "text_hist", "pop"], None),
            "image_only": (["image_hist"], image_emb),
            "text_only": (["text_hist"], None),
            "with_oracle_images": (["itemknn", "text_hist", "image_hist", "pop"], oracle),
        }
        per_user, res = {}, {}
        for name, (channels, img_emb) in variants.items():
            t0 = time.perf_counter()
            f = FusionRanker(channels=channels, members=1, epochs=40, patience=5)
            f.fit(split, text_emb=text_emb, image_emb=img_emb, has_image=has_image if img_emb is not None else None)

            def ev(src):
                feats = features_all(src, users_t, trv, users_t, f.items_)

                def score(ub):
                    out = np.full((len(ub), n), -np.inf, np.float32)
                    out[:, f.items_] = f.score_features(feats, np.searchsorted(users_t, ub))
                    return out
                return evaluate_scores(score, users_t, trv, split.test, split.items, (10,))

            r = ev(f.src)
            per_user[name] = r.per_user["ndcg@10"]
            res[name] = {"ndcg@10": round(float(r.per_user["ndcg@10"].mean()), 4),
                         "recall@10": round(float(r.per_user["recall@10"].mean()), 4),
                         "served": f.info.get("selection", {}).get("served"), "fit_s": round(time.perf_counter() - t0, 1)}
            if name == "with_images":
                from dataclasses import replace

                drop = np.random.default_rng(3).random(n) < 0.30
                r2 = ev(replace(f.src, has_image=f.src.has_image & ~drop))
                per_user["with_images_30pct_removed_at_test"] = r2.per_user["ndcg@10"]
                res["with_images_30pct_removed_at_test"] = {"ndcg@10": round(float(r2.per_user["ndcg@10"].mean()), 4),
                                                             "recall@10": round(float(r2.per_user["recall@10"].mean()), 4)}
            log(f"fusion {scenario}/{name}: ndcg@10 {res[name]['ndcg@10']}")
        ci = {f"{a} - {b}": {k: round(v, 4) for k, v in paired_bootstrap(per_user[a], per_user[b], 1000, 0).items()}
              for a, b in (("with_images", "without_images"), ("with_oracle_images", "without_images"),
                           ("with_oracle_images", "with_images"), ("with_images", "image_only"),
                           ("with_images_30pct_removed_at_test", "with_images"),
                           ("with_images_30pct_removed_at_test", "without_images"))}
        results[scenario] = {"w_image": w_image, "users": int(len(users_t)), "ndcg": res, "paired_bootstrap_95": ci}
    return results


def _cached_text_emb(enc, texts: list[str], work: Path) -> np.ndarray:
    import hashlib

    key = hashlib.blake2b(("\x1e".join([enc.name, *texts])).encode(), digest_size=8).hexdigest()
    path = work / f"text-emb-{key}.npy"
    if path.is_file():
        return np.load(path)
    emb = enc.embed_texts(texts)
    np.save(path, emb)
    return emb


def _embed_unique(enc, texts: list[str]) -> np.ndarray:
    """CLIP text embeddings, each distinct text encoded once."""
    uniq = sorted(set(texts))
    emb = enc.embed_texts(uniq, batch_size=256)
    pos = {t: i for i, t in enumerate(uniq)}
    return emb[[pos[t] for t in texts]]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="train,zeroshot,search,index,fusion")
    ap.add_argument("--work", default="runs/bench-images")
    ap.add_argument("--checkpoint", default=None, help="CLIP checkpoint (default: <work>/clip/clip.pt, trained if missing)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--fusion-items", type=int, default=3000)
    # 800 users (~5 interactions per item): the sparse case where content channels matter; with
    # 2,000 item-item CF recovers the picture taste by itself (docs/images.md)
    ap.add_argument("--fusion-users", type=int, default=800)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RECAGENT_RUNS_DIR", str(work / "runs"))
    from recagent.config import load_config
    from recagent.data import load_dataset
    from recagent.retrieval.clip import ClipEncoder

    cfg = load_config(None, ())
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    parts = set(args.parts.split(","))
    out: dict = {"machine": {"cpus": os.cpu_count(), "torch_threads": args.threads, "load_avg_start": _load_avg(),
                             "note": "shared 2-core machine, busy with other jobs: wall times are upper bounds"}}
    ckpt = Path(args.checkpoint) if args.checkpoint else work / "clip" / "clip.pt"
    if "train" in parts:
        out["train"] = part_train(cfg, ckpt.parent, log)
    enc = ClipEncoder(checkpoint=ckpt, batch_size=256)
    enc.checkpoint_path = str(ckpt)
    ds = load_dataset(cfg, "fashion-mnist")
    test_img = None
    partial = work / "results.partial.json"
    if "zeroshot" in parts:
        out["zeroshot"], test_img = part_zeroshot(enc, ds, log)
        partial.write_text(json.dumps(out, indent=1, default=str))
    if "search" in parts:
        out["search"] = part_search(cfg, enc, work, log)
        partial.write_text(json.dumps(out, indent=1, default=str))
    if "index" in parts:
        out["index_70k"] = part_index(cfg, enc, ds, test_img, work, args.queries, log)
        partial.write_text(json.dumps(out, indent=1, default=str))
    if "fusion" in parts:
        out["fusion_synthetic"] = part_fusion(cfg, enc, ds, work, args.fusion_items, args.fusion_users, log)
    out["machine"]["load_avg_end"] = _load_avg()
    text = json.dumps(out, indent=1, default=str)
    (work / "results.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
