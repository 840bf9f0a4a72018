"""LLM training data (profile + reason tasks) and LoRA on a tiny random Llama: peft format,
checkpoints, resume to the same weights, merged model, and the chat loading the adapter."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from recagent.agent.vocab import Nouns
from recagent.finetune.config import FinetuneConfig


def make_tiny_llama(out, cache_dir):
    """A 2-layer random Llama with the cached SmolLM2 tokenizer (fast; output is gibberish)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    src = cache_dir / "models" / "smollm2-135m-instruct"
    if not (src / "tokenizer.json").exists() and not (src / "tokenizer_config.json").exists():
        pytest.skip("SmolLM2 tokenizer not cached; run `recagent models pull`")
    tok = AutoTokenizer.from_pretrained(src)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, cache_dir):
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), cache_dir)


SETTINGS = FinetuneConfig(max_examples=40, heldout_users=1, min_history=3, batch_size=4, checkpoint_every=2,
                          max_seq_len=256, lora_r=4, lora_alpha=8, profile_cutoff=0.6)


def _data(tiny, tmp_path):
    from recagent.finetune.llm_data import TRAIN_FILE, build_llm_data, read_examples

    meta = build_llm_data(tiny, SETTINGS, Nouns("film", "genre"), tmp_path / "llm_data", llm=None, quiet=True)
    return meta, read_examples(tmp_path / "llm_data" / TRAIN_FILE)


def test_llm_data_has_both_tasks_with_verified_varied_targets(tiny, tmp_path):
    from recagent.agent.verify import Verifier, sentence_frame
    from recagent.agent.vocab import CatalogVocab

    meta, ex = _data(tiny, tmp_path)
    assert meta["profile"] > 0 and meta["reason"] > 0 and meta["examples"] == len(ex)
    assert len(meta["data_hash"]) == 64
    ver = Verifier(CatalogVocab(tiny.catalog))
    reasons = [e for e in ex if e["task"] == "reason"]
    frames = {sentence_frame(e["target"], ver.vocab) for e in reasons}
    assert len(frames) >= 3, frames              # never one template repeated
    for e in ex:
        assert e["messages"][-1]["role"] == "user" and e["target"].strip()
    heldout = json.loads((tmp_path / "llm_data" / "heldout.json").read_text())
    assert len(heldout) == 1
    # a second build with the same settings is byte-identical (the adapter records this hash)
    meta2, _ = _data(tiny, tmp_path)
    assert meta2["data_hash"] == meta["data_hash"]


def test_profile_target_puts_first_what_the_user_liked_later(tiny):
    from recagent.agent.profile import ProfileSummarizer
    from recagent.finetune.llm_data import profile_target

    summ = ProfileSummarizer(tiny)
    idx = tiny.item_index
    p = summ.facets("x", [idx["i1"], idx["i3"], idx["i2"], idx["i4"]], [5, 5, 5, 5])
    later_romance = profile_target(p, [idx["i8"], idx["i4"]], tiny.catalog, Nouns(), 0)
    later_scifi = profile_target(p, [idx["i7"]], tiny.catalog, Nouns(), 0)
    assert later_romance.index("Romance") < later_romance.index(".") and "Sci-Fi" not in later_romance.split(".")[0]
    assert "Sci-Fi" in later_scifi.split(".")[0] and "Romance" not in later_scifi.split(".")[0]


@pytest.mark.slow  # three short trainings: ~20 s on an idle 2-core machine, a minute when it is busy
def test_lora_saves_peft_adapter_and_resumes_to_the_same_weights(tiny, tiny_llama, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from recagent.finetune.lora import FinetuneError, train_lora

    meta, ex = _data(tiny, tmp_path)
    h = meta["data_hash"]
    full = train_lora(tiny_llama, ex, tmp_path / "a" / "adapter", tmp_path / "a" / "ckpt", SETTINGS, h,
                      merged_dir=tmp_path / "a" / "merged", steps=6, quiet=True)
    assert full["trained_steps"] == 6 and len(full["losses"]) == 6 and full["tokens_per_s"] > 0
    # interrupted after step 4 (the last checkpoint), then resumed
    train_lora(tiny_llama, ex, tmp_path / "b" / "adapter", tmp_path / "b" / "ckpt", SETTINGS, h, steps=6, quiet=True)
    ck = tmp_path / "b" / "ckpt" / "last"
    assert json.loads((ck / "state.json").read_text())["step"] == 4
    res = train_lora(tiny_llama, ex, tmp_path / "c" / "adapter", tmp_path / "b" / "ckpt", SETTINGS, h, steps=6,
                     resume=True, quiet=True)
    assert res["resumed_from"] == 4 and res["losses"][:4] == full["losses"][:4]
    a = torch.load(ck / "adapter.pt")  # noqa: F841 - the checkpoint is loadable on its own
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    m1 = PeftModel.from_pretrained(base, tmp_path / "a" / "adapter")
    w1 = {k: v.clone() for k, v in m1.state_dict().items() if "lora" in k}
    m2 = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), tmp_path / "c" / "adapter")
    w2 = {k: v for k, v in m2.state_dict().items() if "lora" in k}
    assert w1.keys() == w2.keys() and all(torch.allclose(w1[k], w2[k], atol=1e-6) for k in w1)
    assert any(float(v.abs().sum()) > 0 for k, v in w1.items() if "lora_B" in k)  # it trained
    tr = json.loads((tmp_path / "a" / "adapter" / "training.json").read_text())
    assert tr["data_hash"] == h and tr["lora_r"] == 4
    assert (tmp_path / "a" / "merged" / "config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "a" / "merged")
    assert not any("lora" in k for k in merged.state_dict())
    # other data or settings: resume refuses with the fix
    with pytest.raises(FinetuneError, match="delete"):
        train_lora(tiny_llama, ex, tmp_path / "d", tmp_path / "b" / "ckpt", dataclasses.replace(SETTINGS, lora_r=2),
                   h, steps=8, resume=True, quiet=True)


@pytest.mark.slow
@pytest.mark.model  # real SmolLM2-135M: 2 LoRA steps of 2 examples, then the chat loads the adapter (~1-3 min)
def test_real_lora_on_smollm2_loads_in_the_chat(tiny, tmp_path, cfg):
    from peft import PeftModel  # noqa: F401 - the adapter format the chat loads

    from recagent.agent.service import build_agent
    from recagent.finetune.lora import train_lora
    from recagent.models import resolve_model

    meta, ex = _data(tiny, tmp_path)
    s = dataclasses.replace(SETTINGS, batch_size=2, max_seq_len=256)
    base = resolve_model(cfg.models.llm, cfg.paths.cache)
    res = train_lora(base, ex[:4], tmp_path / "adapter", tmp_path / "ckpt", s, meta["data_hash"], steps=2, quiet=True)
    assert res["trained_steps"] == 2 and all(x == x for x in res["losses"])  # finite losses
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    c = cfg.replace("models", llm_adapter=str(tmp_path / "adapter"))
    if "llm_backend" in c.to_dict()["models"]:
        c = c.replace("models", llm_backend="hf")
    c = c.replace("agent", explain_max_new_tokens=16, profile_with_llm=False, k=2)
    agent = build_agent(c, tiny)
    assert agent.llm.name.endswith("+adapter")
    reply = agent.respond(agent.new_session(), "robots in space")
    titles = set(tiny.catalog.items["title"])
    assert reply.items and all(it.title in titles for it in reply.items)


def test_epoch_batches_cover_each_example_once_and_group_similar_lengths():
    from recagent.finetune.lora import epoch_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(100, 300, size=203)
    for group in (False, True):
        batches = epoch_batches(lengths, 4, seed=7, group=group)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(203))           # every example once
        assert len(batches) == -(-203 // 4)                         # as many steps as without grouping
        assert all(len(b) <= 4 for b in batches)
        assert [b.tolist() for b in epoch_batches(lengths, 4, seed=7, group=group)] == [b.tolist() for b in batches]
    padded = {g: sum(lengths[b].max() * len(b) for b in epoch_batches(lengths, 4, 7, g)) for g in (False, True)}
    assert padded[True] < 0.95 * padded[False]                      # grouping removes most padding
    assert epoch_batches(lengths, 4, 7, True)[0].tolist() != epoch_batches(lengths, 4, 8, True)[0].tolist()
