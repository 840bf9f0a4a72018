"""Items without text are gated like items without an image: FeatureSources' ``has_text`` masks
the text channels for them, and they do not count in a history's text centroid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recagent.ranking.base import History
from recagent.ranking.features import FeatureSources, build_features

# 6 items in a 2-d text space; items 4 and 5 have no text (zero rows)
TEXT = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8], [0, 0], [0, 0]], np.float32)
HAS_TEXT = np.array([True, True, True, True, False, False])


def _history() -> History:
    # user 0: items 0 and 4 (one with text, one without); user 1: only item 5 (no text); user 2: nothing
    df = pd.DataFrame({"uidx": [0, 0, 1], "iidx": [0, 4, 5], "timestamp": [1.0, 2.0, 3.0]})
    return History.from_frame(df, n_users=3, n_items=6)


def _features(src, channels, profile_text=None):
    return build_features(src, channels, np.arange(3), _history(), np.arange(6), profile_text=profile_text)


def test_zero_text_rows_are_taken_as_missing_text():
    src = FeatureSources(text_emb=TEXT, n_items=6)
    np.testing.assert_array_equal(src.has_text, HAS_TEXT)
    assert FeatureSources(text_emb=np.zeros((3, 2), np.float32), n_items=3).available("text_hist") is False


def test_items_without_text_are_masked_in_the_text_channels():
    src = FeatureSources(text_emb=TEXT, has_text=HAS_TEXT, n_items=6)
    F, M = _features(src, ["text_hist", "text_profile"], profile_text=np.tile([[1.0, 0.0]], (3, 1)))
    hist, prof = 0, 1
    # user 0: centroid of item 0 only (item 4 has no text): candidate scores = cosine with item 0
    np.testing.assert_allclose(F[0, :4, hist], TEXT[:4] @ TEXT[0], atol=1e-6)
    assert M[0, :4, hist].min() == 1 and M[0, 4:, hist].max() == 0      # no text: gated, not "similarity 0"
    # user 1's history has no text at all, user 2 has no history: the channel is absent for them
    assert M[1, :, hist].max() == 0 and M[2, :, hist].max() == 0
    # the profile text channel is gated per item the same way
    assert M[:, :4, prof].min() == 1 and M[:, 4:, prof].max() == 0
    assert (F * (1 - M) == 0).all()


def test_the_no_text_mask_is_the_no_image_mask_mirrored():
    """The same items lack text in one source and an image in the other: identical gates."""
    img_src = FeatureSources(image_emb=TEXT, has_image=HAS_TEXT, n_items=6)
    txt_src = FeatureSources(text_emb=TEXT, has_text=HAS_TEXT, n_items=6)
    Fi, Mi = _features(img_src, ["image_hist"])
    Ft, Mt = _features(txt_src, ["text_hist"])
    np.testing.assert_array_equal(Mi, Mt)
    np.testing.assert_allclose(Fi, Ft, atol=1e-6)


@pytest.mark.parametrize("given", [None, np.ones(6, bool)])
def test_without_a_mask_every_nonzero_row_counts(given):
    emb = TEXT + 0.1  # every item has text
    src = FeatureSources(text_emb=emb, has_text=given, n_items=6)
    _, M = _features(src, ["text_hist"])
    assert M[0].min() == 1 and M[1].min() == 1 and M[2].max() == 0
