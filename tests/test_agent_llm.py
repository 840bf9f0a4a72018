"""LLM backends: one shared contract (batching, streaming, budgets, Stop, concurrent sessions) run
against transformers (`HFModel`), CTranslate2 (`CT2Model`) on a tiny random Llama and the test
fake; the OpenAI-compatible client against a local HTTP server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from fakes import FakeLLM

from recagent.agent.llm import LLM, as_messages, stopping
from recagent.agent.llm_openai import OpenAIClient
from recagent.errors import ConfigError, ModelError


def test_fake_llm_queue_and_base_class():
    llm = FakeLLM(["one", "two three"], default="dflt")
    assert isinstance(llm, LLM)
    assert llm.generate("hi") == "one"
    assert list(llm.stream([{"role": "user", "content": "x"}])) == ["two", " three"]
    assert llm.generate_batch(["a", "b"]) == ["dflt", "dflt"]
    assert llm.calls[0] == [{"role": "user", "content": "hi"}] and len(llm.calls) == 4


def test_as_messages_rejects_bad_roles():
    with pytest.raises(ValueError, match="role"):
        as_messages([{"role": "tool", "content": "x"}])


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, cache_dir):
    """A 2-layer random Llama with the cached SmolLM2 tokenizer (one builder: tests/test_finetune_lora.py)."""
    from test_finetune_lora import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), cache_dir)


@pytest.fixture(scope="module")
def tiny_ct2(tiny_llama, tmp_path_factory):
    """The tiny Llama converted for the fast backend (the same code path as `models pull`)."""
    pytest.importorskip("ctranslate2")
    from recagent.models import convert_for_fast_backend

    return convert_for_fast_backend(tiny_llama, tmp_path_factory.mktemp("tiny-ct2") / "ct2", log_fn=lambda m: None)


SYSTEM = {"role": "system", "content": "You explain picks from a catalog of things. " * 8}   # a long shared prefix
PROMPTS = ["Hello there, how are you today my friend?",
           [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]]


class _StopMidway(threading.Event):
    """A stop event that holds the generating thread at its 5th check (tokens are being written)
    until another thread has set it: a tiny model writes 300 tokens faster than a test can press
    Stop, so the timing is made certain instead of slept for."""

    def __init__(self) -> None:
        super().__init__()
        self.generating = threading.Event()
        self._checks = 0

    def is_set(self) -> bool:
        self._checks += 1
        if self._checks == 5:
            self.generating.set()
            self.wait(10)
        return super().is_set()


class LLMContract:
    """What every local backend must do; subclasses provide the ``llm`` fixture (``max_new_tokens=6``)."""

    def test_batch_matches_single_and_is_deterministic(self, llm):
        single = [llm.generate(p) for p in PROMPTS]
        assert llm.generate_batch(PROMPTS) == single       # batched greedy output = one at a time
        assert llm.generate(PROMPTS[0]) == single[0]        # greedy = deterministic
        assert "".join(llm.stream(PROMPTS[0])).strip() == single[0]
        assert any(single), "the model generated nothing: the contract tests would prove little"

    def test_shared_prefix_cache_gives_the_same_output(self, llm):
        prompts = [[SYSTEM, {"role": "user", "content": q}] for q in ("Toy Story", "A much longer question here", "Fargo")]
        llm.min_prefix = 10**9
        plain = llm.generate_batch(prompts)
        llm.min_prefix = 32
        assert llm.generate_batch(prompts) == plain
        assert llm.generate_batch(prompts) == plain        # the stored prefix is reused unchanged
        assert llm.generate_batch(prompts[1:]) == plain[1:]
        assert [llm.generate(p) for p in prompts] == plain  # one prompt reuses the batch's remembered prefix

    def test_token_and_time_budgets(self, llm):
        assert len(llm.tokenizer(llm.generate("Count", max_new_tokens=5))["input_ids"]) <= 6
        llm.max_seconds = 0.0                           # the wall-time budget ends it at once
        try:
            short = llm.generate("Count", max_new_tokens=200)
        finally:
            llm.max_seconds = 20.0
        assert len(llm.tokenizer(short)["input_ids"]) <= 3

    def test_stop_ends_a_running_generation(self, llm):
        budget = 300
        full = llm.generate("Count to a thousand", max_new_tokens=budget)
        n_full = len(llm.tokenizer(full)["input_ids"])
        assert n_full > 100                             # without Stop it runs long (no early end of text)
        stop = _StopMidway()
        out: list[str] = []
        worker = threading.Thread(target=lambda: out.append(llm.generate("Count to a thousand", budget, stop=stop)))
        worker.start()
        assert stop.generating.wait(10)                 # tokens are being written now ...
        stop.set()                                      # ... e.g. the UI's Stop button, from another thread
        worker.join(timeout=10)
        assert not worker.is_alive() and out
        assert 0 < len(llm.tokenizer(out[0])["input_ids"]) < n_full
        with stopping(stop):                            # the same through the context (no argument)
            assert llm.generate("Count to a thousand", budget) == ""
            assert list(llm.stream("Count to a thousand", budget)) == []

    def test_closing_a_stream_frees_the_model(self, llm):
        gen = llm.stream("Count to a thousand", max_new_tokens=400)
        first = next(gen)
        gen.close()                                     # the reader went away: the worker ends
        assert first
        assert llm.generate(PROMPTS[1]) == llm.generate(PROMPTS[1])

    def test_two_sessions_generating_at_once_get_their_own_output(self, llm):
        prompts = ["Tell me about robots in space", [SYSTEM, {"role": "user", "content": "Fargo"}]]
        alone = [llm.generate(p, max_new_tokens=40) for p in prompts]
        got: dict[int, list[str]] = {0: [], 1: []}
        barrier = threading.Barrier(2)

        def session(i: int) -> None:
            barrier.wait()
            for _ in range(3):
                got[i].append(llm.generate(prompts[i], max_new_tokens=40))

        threads = [threading.Thread(target=session, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert got[0] == [alone[0]] * 3 and got[1] == [alone[1]] * 3
        assert alone[0] != alone[1]


class TestHFBackend(LLMContract):
    @pytest.fixture(scope="class")
    def llm(self, tiny_llama):
        from recagent.agent.llm_hf import HFModel

        return HFModel(str(tiny_llama), max_new_tokens=6)

    def test_missing_adapter_is_a_clear_error(self, tiny_llama, tmp_path):
        from recagent.agent.llm_hf import HFModel

        with pytest.raises(ModelError, match="adapter_config.json"):
            HFModel(str(tiny_llama), adapter=str(tmp_path))


class TestCT2Backend(LLMContract):
    @pytest.fixture(scope="class")
    def llm(self, tiny_ct2):
        from recagent.agent.llm_ct2 import CT2Model

        return CT2Model(str(tiny_ct2), threads=1, max_new_tokens=6)

    def test_greedy_text_matches_transformers(self, llm, tiny_llama):
        from recagent.agent.llm_hf import HFModel

        hf = HFModel(str(tiny_llama), max_new_tokens=12)
        ref = [hf.generate(p) for p in PROMPTS]
        fp32 = type(llm)(llm.path, compute_type="float32", threads=1, max_new_tokens=12)
        assert [fp32.generate(p) for p in PROMPTS] == ref   # the conversion itself changes nothing

    def test_conversion_is_cached_and_redone_when_the_source_changes(self, tiny_llama, tiny_ct2):
        from recagent.models import convert_for_fast_backend

        msgs: list[str] = []
        assert convert_for_fast_backend(tiny_llama, tiny_ct2, log_fn=msgs.append) == tiny_ct2
        assert msgs == []                               # current: nothing converted again
        (tiny_ct2 / "model.bin").write_bytes(b"broken")
        convert_for_fast_backend(tiny_llama, tiny_ct2, log_fn=msgs.append)
        assert any("converting" in m for m in msgs) and (tiny_ct2 / "model.bin").stat().st_size > 1000

    def test_not_a_converted_folder_is_a_clear_error(self, tiny_llama):
        from recagent.agent.llm_ct2 import CT2Model

        with pytest.raises(ModelError, match="models pull"):
            CT2Model(str(tiny_llama))


class TestFakeLLM(LLMContract):
    """The fake passes the parts of the contract that do not need a real model."""

    @pytest.fixture
    def llm(self):
        return FakeLLM(lambda msgs: "pick " + msgs[-1]["content"][:12])

    test_token_and_time_budgets = test_stop_ends_a_running_generation = None  # canned text has no tokens to cut
    test_shared_prefix_cache_gives_the_same_output = None


def test_load_llm_picks_backend_and_rejects_unknown(cfg):
    from recagent.agent.llm import load_llm

    with pytest.raises(ConfigError, match="llm_backend"):
        load_llm(cfg.replace("models", llm_backend="vllm"))


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
    assert llm.name == "openai:qwen"
    assert isinstance(llm, OpenAIClient) and llm.url == "http://127.0.0.1:8000/v1/chat/completions"


@pytest.mark.model
@pytest.mark.parametrize("backend", ["ct2", "hf"])
def test_real_llm_backends_write_grounded_reasons_in_a_turn(cfg, ml100k, backend):
    """Both local backends behind `load_llm` (``models.llm_backend``) serve the same agent turn on
    the real SmolLM2: at least one reason written by the LLM and passing the verifier."""
    from recagent.agent.llm import load_llm
    from recagent.agent.service import build_agent

    c = cfg.replace("models", llm_backend=backend).replace("agent", k=3, explain_max_new_tokens=32, max_seconds=600.0)
    llm = load_llm(c)
    assert llm.name.startswith(backend + ":") and load_llm(c) is llm       # loaded once per process
    agent = build_agent(c, ml100k, llm=llm, text_encoder=False)
    reply = agent.respond(agent.new_session("196"), "something funny from the 90s")
    assert len(reply.items) == 3
    assert any(it.reason_source in ("llm", "llm-retry") for it in reply.items), [it.reason_source for it in reply.items]


def test_stop_reaches_the_llm_calls_inside_an_agent_turn(tiny, tiny_ct2):
    """The UI wraps a turn in ``stopping(event)``; the explainer's batch (deep inside the agent)
    sees the event: a stopped turn still answers, with template reasons and no generation."""
    from recagent.agent.agent import Agent
    from recagent.agent.llm_ct2 import CT2Model

    llm = CT2Model(str(tiny_ct2), threads=1, max_new_tokens=200)
    calls: list[int] = []
    real = llm._generate
    llm._generate = lambda prompts, req: calls.append(len(prompts)) or real(prompts, req)
    agent = Agent(tiny, llm=llm)
    agent.respond(agent.new_session(None), "robots in space")
    assert calls                                            # not stopped: the LLM was asked
    calls.clear()
    stop = threading.Event()
    stop.set()
    with stopping(stop):
        reply = agent.respond(agent.new_session(None), "robots in space")
    assert reply.items and calls == []
    assert {it.reason_source for it in reply.items} == {"template"}
