"""Config section ``[agent]``: generation budgets and the turn loop."""

from __future__ import annotations

from dataclasses import dataclass

from recagent.config import opt


@dataclass(frozen=True)
class AgentConfig:
    max_new_tokens: int = opt(60, "token budget of one generated reason or profile", min=1)
    max_seconds: float = opt(20.0, "wall-time budget of one generation", gt=0)
    temperature: float = opt(0.0, "0 = greedy, deterministic", min=0, max=2)
    k: int = opt(5, "items recommended per turn", min=1)
    max_message_chars: int = opt(2000, "longer user messages are refused", min=1)
    explain_max_new_tokens: int = opt(40, "token budget of one explanation (1-2 sentences; ~3 s at 14 tok/s on 2 cores)",
                                      min=1)
    profile_max_new_tokens: int = opt(60, "token budget of the profile prose (2-3 sentences)", min=1)
    llm_explain_top: int = opt(5, "items per turn whose reasons the LLM writes (best first); the rest get template reasons. "
                                  "5 LLM reasons take ~8 s on 2 busy cores, 2 take ~4 s", min=0)
    explain_with_llm: bool = opt(True, "false = template reasons only (no LLM call; fastest)")
    profile_with_llm: bool = opt(True, "false = template profile prose only")
    like_threshold: float = opt(4.0, "ratings >= this count as liked in profiles, co-liked evidence and neighbours",
                                unbounded="a rating on the log's own scale (data.rating_min..rating_max)")
    dislike_threshold: float = opt(2.0, "ratings <= this count as disliked in profiles",
                                   unbounded="a rating on the log's own scale (data.rating_min..rating_max)")
    fuzzy_threshold: float = opt(88.0, "rapidfuzz score (0-100) for a phrase to match a catalog title", min=0, max=100)
    history_neighbours: int = opt(2, "closest history items shown in an explanation's fact sheet", min=0)
    exemplars: int = opt(3, "exemplar titles in a profile", min=0)
    recent_window: int = opt(20, "last N interactions that define a profile's recent drift", min=1)
    ranker: str = opt("auto", "chat ranking: 'fusion' (ChromaDB index + trained FusionRanker; trains it on first use), "
                              "'simple' (embeddings + co-likes, no training), 'auto' (fusion when a trained model is saved)",
                              choices=("fusion", "simple", "auto"))
    candidate_pool: int = opt(200, "items scored per turn by the default SimpleRanker before constraints", min=1)
    request_in_prompt: bool = opt(False, "quote the user's request (as data) in explanation prompts; off for small LLMs")
    exclude_similarity: float = opt(0.6, "'no dairy' also excludes categories whose name's text embedding has at least "
                                         "this cosine similarity to 'dairy' (1 = words and abbreviations only). MiniLM: "
                                         "dairy~Cheese 0.67, dairy~Ice Cream 0.61, robots~Sci-Fi 0.46, sweets~Snack Chips 0.48",
                                    min=0, max=1)
    http_timeout: float = opt(60.0, "seconds before a request to an OpenAI-compatible endpoint gives up", gt=0)
