"""retrieval.clip.zero_shot_scores: prompt ensembles averaged ("mean") or scored by the softmax
mass over a class's prompts ("marginal"), on hand-made unit embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from recagent.retrieval.clip import zero_shot_scores


def unit(*rows):
    a = np.asarray(rows, np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


# class 0 has two kinds of items (prompts along x and along y); class 1 lies nearer the x kind
# than class 0's average does
PROMPTS = [unit((1, 0, 0), (0, 1, 0)), unit((1, 0.6, 0.2))]
IMAGES = unit((1, 0.05, 0), (0.05, 1, 0), (1, 0.6, 0.25))
LABELS = np.array([0, 0, 1])


def test_marginal_scores_an_image_by_the_prompts_that_describe_it():
    mean = zero_shot_scores(IMAGES, PROMPTS, "mean").argmax(1)
    marginal = zero_shot_scores(IMAGES, PROMPTS, "marginal", scale=20.0).argmax(1)
    assert (marginal == LABELS).all()
    # the class-0 average points between its two kinds: the x-like item is nearer class 1's
    assert mean[0] == 1 and (mean[1:] == LABELS[1:]).all()


def test_mean_with_one_prompt_is_the_cosine():
    s = zero_shot_scores(IMAGES, [p[:1] for p in PROMPTS], "mean")
    np.testing.assert_allclose(s, IMAGES @ np.stack([PROMPTS[0][0], PROMPTS[1][0]]).T, rtol=1e-5)


def test_marginal_is_the_log_of_the_mean_softmax_numerator_and_stable_at_large_scale():
    s = zero_shot_scores(IMAGES, PROMPTS, "marginal", scale=3.0)
    want = np.log(np.exp(3.0 * IMAGES @ PROMPTS[0].T).mean(1))
    np.testing.assert_allclose(s[:, 0], want, rtol=1e-5)
    assert np.isfinite(zero_shot_scores(IMAGES, PROMPTS, "marginal", scale=1e4)).all()


def test_weights_pick_the_prompts_that_count():
    # all weight on class 0's y-prompt: the x-like image no longer belongs to class 0
    w = [np.array([0.0, 1.0]), np.array([1.0])]
    pred = zero_shot_scores(IMAGES, PROMPTS, "marginal", scale=20.0, weights=w).argmax(1)
    assert pred[0] == 1 and pred[1] == 0


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="how="):
        zero_shot_scores(IMAGES, PROMPTS, "max")


def _bench_images():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_images", Path(__file__).parents[1] / "benchmarks" / "images.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_grammar_prompts_are_the_captions_the_catalog_writes():
    """The zero-shot grammar sentences of benchmarks/images.py are exactly the texts the built-in
    catalog's generator writes for that class (so a change to the generator cannot leave the
    benchmark scoring stale sentences), and no sentence belongs to two classes."""
    from recagent.data.images import CLASSES, describe_items

    prompts = _bench_images().zero_shot_prompts({"x": 1})
    full, _ = prompts["caption_grammar_ensemble_full"]
    assert [len(p) for p in full] == [18 * len(c[3]) * len(c[4]) for c in CLASSES]
    flat = [s for per in full for s in per]
    assert len(set(flat)) == len(flat)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(CLASSES)), 30)
    pixels = (rng.random((len(labels), 28, 28)) * 255 * (rng.random((len(labels), 1, 1)) + 0.2)).clip(0, 255).astype(np.uint8)
    items = describe_items(pixels, labels, np.zeros(len(labels), bool))
    for text, k in zip(items["text"], labels):
        assert text in full[k], text
    sets, weights = prompts["caption_grammar_full[prior]"]
    assert sets is full and [len(w) for w in weights] == [len(p) for p in full]
