"""LLM training targets: profile rules chosen by what retrieves the users' later likes, and reason
targets that are grounded (nothing invented) and varied. On a small grocery catalog written here."""

from __future__ import annotations

import pytest

from recagent.agent.vocab import Nouns

GROCERY = """item_id,title,text,categories
g1,Oat Loaf,Whole oat bread,Bakery
g2,Rye Rolls,Dark rye rolls,Bakery
g3,Greek Yogurt,Thick plain yogurt,Dairy
g4,Aged Cheddar,Sharp cheddar cheese,Dairy
g5,Butter Block,Salted butter,Dairy
g6,Pizza Margherita,Stone baked frozen pizza,Frozen
g7,Pea Bag,Frozen garden peas,Frozen
g8,Apple Crate,Crisp red apples,Produce
g9,Banana Bunch,Ripe bananas,Produce
g10,Salt Crisps,Thin potato crisps,Snacks
g11,Cheese Straws,Baked cheese snacks,Snacks|Dairy
g12,Cream Jug,Fresh single cream,Dairy
"""
NOUNS = Nouns("product", "aisle")


@pytest.fixture
def grocery(tmp_path):
    from recagent.data import load_files

    (tmp_path / "items.csv").write_text(GROCERY, encoding="utf-8")
    rows = ["user_id,item_id,timestamp,rating"]
    # every shopper starts with bakery, produce and snacks, and goes on to buy dairy
    for u in range(8):
        seq = ["g1", "g8", "g10", "g2", "g9", "g3", "g4", "g5", "g12"]
        for j, it in enumerate(seq):
            rows.append(f"s{u},{it},{1_000 + 100 * u + j},{5 if j % 3 else 4}")
    (tmp_path / "log.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return load_files(tmp_path / "items.csv", tmp_path / "log.csv", name="grocery")


def _explainer(ds):
    from recagent.agent.explain import Explainer
    from recagent.agent.verify import Verifier
    from recagent.agent.vocab import CatalogVocab

    return Explainer(None, Verifier(CatalogVocab(ds.catalog, nouns=NOUNS)))


def test_profile_candidates_say_only_what_the_prompt_shows(grocery):
    from recagent.agent.profile import ProfileSummarizer
    from recagent.finetune.llm_data import profile_candidates

    ex = _explainer(grocery)
    summ = ProfileSummarizer(grocery, None, ex.verifier)
    idx = grocery.item_index
    p = summ.facets("s0", [idx[i] for i in ["g1", "g8", "g10", "g2", "g9", "g11"]], [5, 4, 5, 5, 4, 5])
    cands = profile_candidates(p, NOUNS)
    assert len(cands) >= 10
    for variant in (1, 2):  # every sentence frame passes the verifier (a verbless one lost 2/3 of the targets)
        cands |= {(k, variant): t for k, t in profile_candidates(p, NOUNS, variant).items()}
    shown = {c for c, _ in p.liked_categories[:4]}
    prompt = summ.prompt(p)[-1]["content"]
    for key, text in cands.items():
        pos, era, fav = key if len(key) == 3 else key[0]
        assert ex.verifier.check(text, p.facts(ex.verifier.vocab)).ok, text
        named = {c for c in ["Bakery", "Dairy", "Frozen", "Produce", "Snacks"] if c in text}
        assert named and named <= shown, (text, named)
        if fav:
            assert f'"{p.exemplars[fav - 1]}"' in text and f'"{p.exemplars[fav - 1]}"' in prompt
        assert "movie" not in text.lower()


def test_profile_targets_pick_the_rule_that_retrieves_later_likes(grocery):
    """Shoppers' histories are mostly Bakery/Produce/Snacks, with one Dairy item (Cheese Straws,
    Snacks and Dairy); what they buy later is Dairy. The target must name the history category
    that points at the later purchases, which the chat's default (first two categories) misses."""
    from recagent.agent.profile import ProfileSummarizer
    from recagent.finetune.llm_data import ProfileTargets, UserSplit, split_user
    from recagent.ranking.content import item_text_embeddings
    from recagent.retrieval.encoders import HashEncoder

    ex = _explainer(grocery)
    summ = ProfileSummarizer(grocery, None, ex.verifier)
    idx = grocery.item_index
    enc = HashEncoder(dim=256)
    emb = item_text_embeddings(grocery.catalog, enc)
    users = []
    for u in map(str, grocery.user_ids):
        sp = split_user(grocery, u, 0.6, 4.0)
        hist = [idx[i] for i in ["g1", "g8", "g11", "g2", "g9"]]  # Snacks via Cheese Straws (also Dairy)
        sp = UserSplit(u, hist, [5.0] * 5, hist, [idx["g3"], idx["g4"], idx["g5"], idx["g12"]])
        users.append((summ.facets(u, sp.rows, sp.ratings), sp))
    t = ProfileTargets(enc, emb, NOUNS, top_rules=2)
    scores = t.fit(users)
    assert len(scores) > 5 and len(t.house_rules) == 2
    p, sp = users[0]
    target = t.target(p, sp)
    assert ex.verifier.check(target, p.facts(ex.verifier.vocab)).ok
    # the chosen rule beats the chat's few-shot default (first two categories) on these users
    default = (((0, 1), 0, 0), 0)
    assert scores[t.house_rules[0]] > scores.get(default, 0.0), (target, scores)
    assert "Dairy" in target, target
    # the phrasing is part of the rule: every house rule names one, and the target is that text
    assert all(len(k) == 2 and k[1] in range(3) for k in t.house_rules)
    assert target in {t.candidates(p)[k] for k in t.house_rules}


def test_grounding_rejects_invented_details_and_claims(grocery):
    from recagent.agent.explain import build_fact_sheets
    from recagent.agent.explain import invented_words
    from recagent.finetune.llm_data import grounded

    ex = _explainer(grocery)
    idx = grocery.item_index
    sheet = build_fact_sheets(grocery.catalog, [(idx["g4"], "neighbours")], [idx["g3"]], None, None, 2, {idx["g3"]})[0]
    good = '"Aged Cheddar" shares Dairy with "Greek Yogurt", which you liked.'
    assert grounded(good, sheet, ex), invented_words(good, sheet, NOUNS)
    for bad in ['"Aged Cheddar" is an iconic Christmas cheese from a famous Swiss farm.',   # invented
                '"Aged Cheddar" is another favorite of yours, like "Greek Yogurt".',        # claim about the user
                '"Aged Cheddar" is Dairy Dairy like "Greek Yogurt", which you liked.',      # stutter
                'It shares Dairy with "Greek Yogurt", which you liked.',                     # does not name the item
                '"Aged Cheddar" is a nice thing.']:                                          # no reason from the sheet
        assert not grounded(bad, sheet, ex), bad


def test_training_reasons_pass_the_chat_checks_in_many_frames(grocery):
    from recagent.agent.explain import build_fact_sheets
    from recagent.agent.verify import sentence_frame
    from recagent.finetune.llm_data import grounded, training_reasons

    ex = _explainer(grocery)
    idx = grocery.item_index
    frames = set()
    cases = [(idx["g4"], "neighbours", [idx["g3"]]), (idx["g6"], "popular", []), (idx["g8"], "cf", [idx["g9"]]),
             (idx["g7"], "query", [idx["g1"]])]
    for item, ch, hist in cases:
        for s in build_fact_sheets(grocery.catalog, [(item, ch)], hist, None, None, 2, set(hist)):
            texts = training_reasons(s, NOUNS)
            assert len(texts) >= 3
            assert sum(grounded(t, s, ex) for t in texts) >= 0.6 * len(texts)  # the rest name no category
            for t in texts:
                assert ex._check(t, s).ok, (t, ex._check(t, s).problems)
                assert "movie" not in t.lower() and s.title in t
                frames.add(sentence_frame(t, ex.verifier.vocab))
    assert len(frames) >= 20, len(frames)


def test_example_shaped_targets_open_like_the_prompts_example(grocery):
    from recagent.agent.explain import build_fact_sheets
    from recagent.agent.verify import sentence_frame
    from recagent.finetune.llm_data import grounded, shot_shaped

    ex = _explainer(grocery)
    idx = grocery.item_index
    vocab = ex.verifier.vocab
    sheets = [build_fact_sheets(grocery.catalog, [(idx["g4"], "neighbours")], [idx["g3"]], None, None, 2, {idx["g3"]})[0],
              build_fact_sheets(grocery.catalog, [(idx["g6"], "popular")], [], None, None, 2, set())[0]]
    made = 0
    for s in sheets:
        for slot in range(5):
            text = shot_shaped(ex, s, slot)
            if text is None:
                continue
            made += 1
            shot = ex.prompt(s, None, slot)[2]["content"]  # the example reply this prompt shows
            assert sentence_frame(text, vocab) == sentence_frame(shot, vocab), (text, shot)
            assert grounded(text, s, ex) and s.title in text and "Moon Harbor" not in text and "Night Train" not in text
    assert made >= 6


def test_batched_profile_prose_matches_the_chats_one_at_a_time(grocery):
    """The eval writes profiles in batches (`ProfileSummarizer.many`); each must be what
    `from_items` gives the chat for the same history: the LLM's text when it passes the
    verifier, else the template."""
    from fakes import FakeLLM

    from recagent.agent.profile import ProfileSummarizer
    from recagent.finetune.llm_data import split_user

    ex = _explainer(grocery)

    def replies():  # every third profile names an invented title, which the verifier rejects
        return [('You enjoy "Moon Harbor" above all.' if i % 3 == 2 else "You enjoy Snacks products.")
                for i in range(100)]

    splits = [split_user(grocery, str(u), 0.6, 4.0) for u in grocery.user_ids]
    llm = FakeLLM(replies())
    summ = ProfileSummarizer(grocery, llm, ex.verifier, max_new_tokens=40)
    many = summ.many([(sp.user_id, sp.rows, sp.ratings) for sp in splits], batch=3)
    one = ProfileSummarizer(grocery, FakeLLM(replies()), ex.verifier, max_new_tokens=40)
    expect = [one.from_items(sp.user_id, sp.rows, sp.ratings, prose=True) for sp in splits]
    assert [(p.prose, p.prose_source) for p in many] == [(p.prose, p.prose_source) for p in expect]
    assert {"llm", "template"} <= {p.prose_source for p in many}  # both paths were taken
    assert len(llm.calls) == sum(p.n_items > 0 for p in many)  # one prompt per profile, none twice
