"""recagent.agent: the part that talks.

Modules (import them directly; this package imports nothing so config loading stays cheap):
  llm       LLM protocol, HFModel (local transformers + LoRA), OpenAIClient, FakeLLM, load_llm
  vocab     catalog titles (fuzzy) and category words with synonyms
  dialogue  DialogueParser -> Parsed; SessionState (JSON-serialisable), Constraints
  profile   ProfileSummarizer -> Profile (facets from data + verified prose)
  explain   fact sheets, co-liked Evidence, Explainer (LLM -> verify -> retry -> template)
  verify    Verifier: titles, genres, years, numbers must come from the facts
  ranker    CandidateRanker protocol, SimpleRanker (embeddings + co-occurrence + popularity)
  agent     Agent.respond / respond_stream: the turn loop
  service   build_agent(cfg, dataset), explain_for_user(cfg, dataset, user_id, item_ids)
"""
