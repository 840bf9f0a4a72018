"""HTML for the chat UI's cards, "why this?" details and profile panel: pure functions of plain
data (no gradio import), so they are unit-tested without a server. Catalog text is escaped.
"""

from __future__ import annotations

import html
from typing import Any, Sequence

# Readable names of ranker channels for "why this?"; unknown channels show their own name.
CHANNEL_NAMES = {
    "cf": "Collaborative filtering", "text": "Text similarity", "text_profile": "Profile ↔ item text",
    "text_history": "History ↔ item text", "image": "Image similarity", "cross_modal": "Profile ↔ item image",
    "clip_text": "Profile ↔ item image", "popularity": "Popularity", "recency": "Recency",
    "query": "Matches your message", "constraint": "Matches your constraints", "profile": "Fits your profile",
    "fused": "Fused score", "score": "Final score", "neighbours": "Liked by fans of your picks",
    "popular": "Popularity",
    # FusionRanker channels
    "ease": "Collaborative (EASE)", "itemknn": "Similar to your items (ItemKNN)", "bpr": "Collaborative (BPR)",
    "sasrec": "Next in your sequence (SASRec)", "text_hist": "History ↔ item text", "image_hist": "History ↔ item image",
    "xmodal_profile": "Profile ↔ item image", "pop": "Popularity", "interaction": "Channel interplay",
    "dislike": "Reads like what you disliked",
}

FEEDBACK_BADGES = {"like": "♥ liked", "dislike": "✗ not for me", "seen": "✓ seen"}


def card_html(card: dict[str, Any], rank: int, feedback: str | None = None) -> str:
    """The text part of one item card: rank, title, year, category chips, reason, feedback badge.

    Args:
        card: a `Card.to_dict()`.
        rank: 1-based position in the reply.
        feedback: 'like' / 'dislike' / 'seen' when the user already reacted to this item.
    """
    title = html.escape(str(card.get("title", "")))
    year = card.get("year")
    cats = "".join(f'<span class="ra-chip">{html.escape(str(c))}</span>' for c in card.get("categories", []))
    badge = (f'<span class="ra-badge ra-badge-{feedback}">{FEEDBACK_BADGES[feedback]}</span>'
             if feedback in FEEDBACK_BADGES else "")
    initials = html.escape("".join(w[0] for w in str(card.get("title", "?")).split()[:2]).upper() or "?")
    cover = "" if card.get("image_path") else f'<div class="ra-cover" aria-hidden="true">{initials}</div>'
    reason = html.escape(str(card.get("reason") or ""))
    # Cards come as soon as ranking is done; their reasons fill in as they are written.
    pending = '<p class="ra-reason ra-pending">Writing why…</p>' if card.get("pending") and not reason else ""
    return (
        f'<div class="ra-card" data-item-id="{html.escape(str(card.get("item_id", "")))}">'
        f'{cover}<div class="ra-card-body">'
        f'<div class="ra-card-head"><span class="ra-rank">{rank}</span>'
        f'<span class="ra-title">{title}</span>'
        f'{f"<span class=ra-year>{int(year)}</span>" if year is not None else ""}</div>'
        f'<div class="ra-chips">{cats}</div>'
        f'{f"<p class=ra-reason>{reason}</p>" if reason else ""}{pending}{badge}</div></div>'
    )


def why_html(card: dict[str, Any]) -> str:
    """The "why this?" detail: each ranker channel's score as a labelled bar, largest first."""
    scores = {k: float(v) for k, v in (card.get("scores") or {}).items() if v is not None}
    if not scores:
        return '<p class="ra-muted">No channel scores for this item.</p>'
    top = max(abs(v) for v in scores.values()) or 1.0
    rows = []
    for name, val in sorted(scores.items(), key=lambda kv: -abs(kv[1])):
        label = html.escape(CHANNEL_NAMES.get(name, name.replace("_", " ")))
        width = max(2, int(round(100 * abs(val) / top)))
        rows.append(f'<div class="ra-why-row" data-channel="{html.escape(name)}"><span class="ra-why-name">{label}</span>'
                    f'<span class="ra-why-bar"><span style="width:{width}%"></span></span>'
                    f'<span class="ra-why-val">{val:.3f}</span></div>')
    return '<div class="ra-why">' + "".join(rows) + "</div>"


def profile_html(profile: dict[str, Any]) -> str:
    """The profile panel: summary, liked and disliked titles (constraints are buttons beside it).

    Args:
        profile: a `ProfileView.to_dict()`.
    """
    summary = html.escape(str(profile.get("summary") or "No profile yet."))
    parts = [f'<div class="ra-profile"><p class="ra-summary">{summary}</p>']
    for key, label in (("likes", "Liked"), ("dislikes", "Not for me")):
        titles = profile.get(key) or []
        if titles:
            items = "".join(f'<span class="ra-chip ra-chip-{key}">{html.escape(str(t))}</span>' for t in titles)
            parts.append(f'<div class="ra-profile-row" data-role="{key}"><span class="ra-label">{label}</span>'
                         f'<div class="ra-chips">{items}</div></div>')
    if not profile.get("constraints"):
        parts.append('<p class="ra-muted">No active constraints. Try “no horror” or “from the 80s”.</p>')
    else:
        parts.append('<p class="ra-muted">Active constraints (click one to remove it):</p>')
    parts.append("</div>")
    return "".join(parts)


def empty_cards_html() -> str:
    """What the card panel shows before the first reply."""
    return ('<div class="ra-empty"><p><b>Recommendations appear here.</b></p>'
            '<p>Describe what you feel like, name a title you loved, or pick an example below the chat.</p></div>')


def example_prompts(categories: Sequence[str], titles: Sequence[str] = ()) -> list[str]:
    """Example prompts built from the catalog's own vocabulary (so they always parse).

    Args:
        categories: the catalog's categories, most frequent first.
        titles: a few well-known titles of the catalog (most popular first).
    """
    cats = [c for c in categories if c][:6]
    out = []
    if len(cats) >= 2:
        out.append(f"Something {cats[1].lower()} from the 90s")
    if len(cats) >= 3:
        out.append(f"{cats[0]} but no {cats[2].lower()}")
    if titles:
        out.append(f"I loved {titles[0]}, what else would I like?")
    if len(cats) >= 4:
        out.append(f"A {cats[3].lower()} classic")
    return out or ["What should I try next?"]
