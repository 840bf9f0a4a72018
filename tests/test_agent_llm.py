"""LLM backends: the fake queue, a tiny random Llama through HFModel (batching, streaming,
budgets) and the OpenAI-compatible client against a local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from recagent.agent.llm import LLM, FakeLLM, OpenAIClient, as_messages
from recagent.errors import ConfigError, ModelError


def test_fake_llm_queue_and_protocol():
    llm = FakeLLM(["one", "two three"], default="dflt")
    assert isinstance(llm, LLM)
    assert llm.generate("hi") == "one"
    assert "".join(llm.stream([{"role": "user", "content": "x"}])) == "two three"
    assert llm.generate_batch(["a", "b"]) == ["dflt", "dflt"]
    assert llm.calls[0] == [{"role": "user", "content": "hi"}] and len(llm.calls) == 4


def test_as_messages_rejects_bad_roles():
    with pytest.raises(ValueError, match="role"):
        as_messages([{"role": "tool", "content": "x"}])


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, cache_dir):
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
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_hf_model_batch_matches_single_and_is_deterministic(tiny_llama):
    from recagent.agent.llm import HFModel

    m = HFModel(str(tiny_llama), max_new_tokens=6)
    prompts = ["Hello there, how are you today my friend?", [{"role": "system", "content": "Be brief."},
                                                            {"role": "user", "content": "Hi"}]]
    single = [m.generate(p) for p in prompts]
    batch = m.generate_batch(prompts)
    assert batch == single                       # left padding keeps batched greedy output identical
    assert m.generate(prompts[0]) == single[0]   # greedy = deterministic
    assert "".join(m.stream(prompts[0])).strip() == single[0]


def test_shared_prefix_cache_gives_the_same_output(tiny_llama):
    from recagent.agent.llm import HFModel

    m = HFModel(str(tiny_llama), max_new_tokens=6)
    system = {"role": "system", "content": "You explain movie picks. " * 12}   # a long shared prefix
    prompts = [[system, {"role": "user", "content": q}] for q in ("Toy Story", "A much longer question here", "Fargo")]
    m.min_prefix = 10**9
    plain = m.generate_batch(prompts)
    m.min_prefix = 32
    cached = m.generate_batch(prompts)
    assert len(m._prefixes) == 1 and cached == plain
    assert m.generate_batch(prompts) == plain                # the stored prefix is reused unchanged


def test_hf_model_stops_at_the_token_and_time_budgets(tiny_llama):
    from recagent.agent.llm import HFModel

    m = HFModel(str(tiny_llama), max_new_tokens=5)
    assert len(m.tokenizer(m.generate("Count"))["input_ids"]) <= 6
    m.max_seconds = 0.0                          # the deadline stopping criterion ends after one token
    short = m.generate("Count", max_new_tokens=200)
    assert len(m.tokenizer(short)["input_ids"]) <= 3


def test_stream_closed_early_stops_generation(tiny_llama):
    from recagent.agent.llm import HFModel

    m = HFModel(str(tiny_llama), max_new_tokens=400)
    gen = m.stream("Count to a thousand")
    first = next(gen)
    gen.close()                                  # the reader went away: the worker thread ends
    assert first and m._lock.acquire(timeout=5)  # the model is free again
    m._lock.release()


def test_hf_model_missing_adapter_is_a_clear_error(tiny_llama, tmp_path):
    from recagent.agent.llm import HFModel

    with pytest.raises(ModelError, match="adapter_config.json"):
        HFModel(str(tiny_llama), adapter=str(tmp_path))


class _Handler(BaseHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.requests.append((self.path, dict(self.headers), body))
        if body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"boom")
            return
        text = "Echo: " + body["messages"][-1]["content"]
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for piece in [text[:6], text[6:]]:
                chunk = {"choices": [{"delta": {"content": piece}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
        else:
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)


@pytest.fixture
def endpoint():
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Handler.requests.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.server
def test_openai_client_generate_stream_batch(endpoint):
    c = OpenAIClient(endpoint, "served-model", api_key="sk-test", max_new_tokens=7)
    assert isinstance(c, LLM)
    assert c.generate("ping") == "Echo: ping"
    assert "".join(c.stream("pong")) == "Echo: pong"
    assert sorted(c.generate_batch(["a", "b"])) == ["Echo: a", "Echo: b"]
    path, headers, body = _Handler.requests[0]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test"
    assert body["max_tokens"] == 7 and body["temperature"] == 0.0 and body["model"] == "served-model"


@pytest.mark.server
def test_openai_client_errors_are_one_line(endpoint):
    with pytest.raises(ModelError, match="HTTP 500"):
        OpenAIClient(endpoint + "/v1", "broken").generate("x")
    with pytest.raises(ModelError, match="cannot reach"):
        OpenAIClient("http://127.0.0.1:9", "m", timeout=2).generate("x")
    with pytest.raises(ConfigError, match="http"):
        OpenAIClient("localhost:8000", "m")


def test_load_llm_picks_the_endpoint(cfg):
    from recagent.agent.llm import load_llm

    llm = load_llm(cfg.replace("models", llm_endpoint="http://127.0.0.1:8000", llm="qwen"))
    assert isinstance(llm, OpenAIClient) and llm.url == "http://127.0.0.1:8000/v1/chat/completions"
