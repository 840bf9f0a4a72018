"""recagent.agent: the part that talks.

Modules (import them directly; this package imports nothing so config loading stays cheap):
  llm       LLM base class (backends implement one _generate), stopping(), load_llm; one module per
            backend: llm_ct2 (CTranslate2 int8, the default), llm_hf (transformers + LoRA), llm_openai
  vocab     catalog titles (fuzzy), category words with synonyms, words and abbreviations of asks
  dialogue  DialogueParser -> Parsed (what one message says)
  session   SessionState (JSON-serialisable), Constraints, Feedback; user_history(), allowed()
  profile   ProfileSummarizer -> Profile (facets from data + verified prose)
  explain   fact sheets, co-liked Evidence, Explainer (LLM -> verify -> retry -> template)
  verify    Verifier: titles, genres, years, numbers must come from the facts
  ranker    CandidateRanker protocol, SimpleRanker (embeddings + co-occurrence + popularity)
  fusion_ranker  FusionCandidateRanker: ChromaDB candidates + the trained FusionRanker (the chat's default)
  agent     Agent.respond / respond_stream: the turn loop
  service   build_agent(cfg, dataset), explain_for_user(cfg, dataset, user_id, item_ids)
"""
