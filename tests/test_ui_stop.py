"""Stop ends the turn's LLM generation itself, not only the UI event (issue 11)."""

from __future__ import annotations

import threading
import time

from fakes import FakeLLM

from recagent.agent.llm import Request
from recagent.ui.app import _under
from recagent.ui.mailbox import StopSignals


class SlowLLM(FakeLLM):
    """Writes one word every 20 ms up to 500 words, checking the request's stop like a backend."""

    def _generate(self, prompts, req: Request) -> list[str]:
        out = []
        for _ in range(500):
            if req.should_stop():
                break
            time.sleep(0.02)
            out.append("word")
        self.words = len(out)
        return [" ".join(out)]


def test_stop_signal_reaches_the_llm_call_inside_a_turn():
    llm, stops = SlowLLM(), StopSignals()
    halt = stops.begin("s1")

    def turn():  # like AgentBackend.respond_stream: header first, then the LLM writes
        yield "header"
        yield llm.generate("why?")

    steps = _under(halt, turn())
    assert next(steps) == "header"
    threading.Timer(0.3, lambda: stops.stop("s1")).start()
    t0 = time.monotonic()
    next(steps)
    took = time.monotonic() - t0
    assert llm.words < 100 and took < 5, (llm.words, took)  # 500 words would take 10 s


def test_stop_signals_are_per_session_and_forgotten_after_the_turn():
    stops = StopSignals()
    a, b = stops.begin("a"), stops.begin("b")
    assert stops.stop("a") and a.is_set() and not b.is_set()
    stops.end("b", b)
    assert not stops.stop("b") and not stops.stop(None)
    newer = stops.begin("a")
    stops.end("a", a)  # an older turn ending does not drop the newer turn's event
    assert stops.stop("a") and newer.is_set()
