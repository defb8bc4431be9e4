"""The model layer against a loopback fake of both APIs (llmock on 127.0.0.1).

1. Client overhead per call: Zoo's provider (a tier with retries and a limiter, the
   request built from Zoo's messages, the stream read into a Reply) against a bare SDK
   call to the same server reading the same stream. Sequential calls, medians.
   Target: Zoo <= 1.2x bare.
2. Throughput: 200 briefs x 3 agents (one model call each, the server holding every
   call 200 ms), `run_once` at concurrency 8. Ideal: 600 calls x 0.2 s / 8 = 15 s.
   Target: wall <= 1.1x ideal.

Run: python bench/models.py [--json] [--quick]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from _common import install_note, small_home, table, temp_folder
from llmock.scenarios import Delay, Reply
from llmock.testing import LLMockServer

from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.engine.zoo import Zoo
from zoo.models.base import Message, Request
from zoo.state.runnerlock import runner_lock

KEYS = {"ANTHROPIC_API_KEY": "sk-ant-bench", "OPENAI_API_KEY": "sk-bench"}
CALLS = 300


def _bare(provider: str, server: LLMockServer) -> Any:
    """One plain SDK call per invocation, streamed and read to its end."""
    if provider == "anthropic":
        import anthropic

        a = anthropic.Anthropic(api_key="sk-ant-bench", base_url=f"{server.url}/anthropic",
                                max_retries=0)  # fmt: skip

        def call_a() -> None:
            with a.messages.create(model="claude-haiku-4-5", max_tokens=256, system="s",
                                   messages=[{"role": "user", "content": "hi"}],
                                   stream=True) as stream:  # fmt: skip
                for _ in stream:
                    pass

        return call_a
    import openai

    o = openai.OpenAI(api_key="sk-bench", base_url=server.base_url("openai"), max_retries=0)

    def call_o() -> None:
        messages: Any = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
        with o.chat.completions.create(
            model="gpt-4o-mini", max_tokens=256, stream=True, messages=messages,
            stream_options={"include_usage": True},
        ) as stream:  # fmt: skip
            for _ in stream:
                pass

    return call_o


def _zoo(provider: str, server: LLMockServer, root: Any) -> Any:
    base = f"{server.url}/anthropic" if provider == "anthropic" else server.base_url("openai")
    model = "claude-haiku-4-5" if provider == "anthropic" else "gpt-4o-mini"
    home = small_home(root / provider)
    text = home.roster_path.read_text(encoding="utf-8")
    home.roster_path.write_text(text.replace("agents:", f"""models:
  t: {{provider: {provider}, model: {model}, base_url: "{base}", api_key_env: BENCH_KEY}}
limits:
  {provider}: {{concurrency: 8, requests_per_minute: 100000}}
defaults: {{model: t}}
agents:""", 1), encoding="utf-8")  # fmt: skip
    zoo = Zoo.open(home, env={"BENCH_KEY": "sk-bench-key"})
    model_ = zoo.models.for_tier("t")
    request = Request("s", (Message("user", "hi"),), max_tokens=256)
    return lambda: model_.complete(request)


def _median_ms(fn: Any, n: int) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def overhead(server: LLMockServer, n: int) -> list[dict[str, Any]]:
    server.state.reset()
    server.state.scenarios.add(Reply(text="Done.", times=None))
    rows = []
    with temp_folder() as root:
        for provider in ("anthropic", "openai"):
            bare, zoo = _bare(provider, server), _zoo(provider, server, root)
            bare_ms = zoo_ms = 0.0
            for _ in range(3):  # interleaved rounds, best median of each
                b, z = _median_ms(bare, n // 3), _median_ms(zoo, n // 3)
                bare_ms = b if not bare_ms else min(bare_ms, b)
                zoo_ms = z if not zoo_ms else min(zoo_ms, z)
            ratio = round(zoo_ms / bare_ms, 3)
            rows.append({"provider": provider, "bare_ms": round(bare_ms, 3),
                         "zoo_ms": round(zoo_ms, 3), "ratio": ratio})  # fmt: skip
    return rows


def throughput(server: LLMockServer, briefs: int, delay: float, workers: int) -> dict[str, Any]:
    server.state.reset()
    server.state.scenarios.add(Delay(delay, times=None), Reply(text="Done.", times=None))
    with temp_folder() as root:
        home = small_home(root / "zoo")
        text = home.roster_path.read_text(encoding="utf-8")
        home.roster_path.write_text(text.replace("agents:", f"""models:
  t: {{provider: anthropic, model: claude-haiku-4-5, base_url: "{server.url}/anthropic"}}
limits:
  anthropic: {{concurrency: {workers}}}
defaults: {{model: t, concurrency: {workers}}}
agents:""", 1), encoding="utf-8")  # fmt: skip
        zoo = Zoo.open(home, env=KEYS)
        for i in range(briefs):
            dispatch(zoo, f"Fix bug number {i}", to="beaver")
        started = time.perf_counter()
        with runner_lock(home):
            report = run_once(Zoo.open(home, env=KEYS))
        wall = time.perf_counter() - started
    calls = report.steps
    ideal = calls * delay / workers
    return {"briefs": briefs, "steps": report.steps, "done": report.done, "workers": workers,
            "delay_s": delay, "wall_s": round(wall, 2), "ideal_s": round(ideal, 2),
            "ratio": round(wall / ideal, 3), "failed": len(report.failed)}  # fmt: skip


def main() -> None:
    as_json = "--json" in sys.argv
    quick = "--quick" in sys.argv
    with LLMockServer(host="127.0.0.1") as server:
        rows = overhead(server, 60 if quick else CALLS)
        flow = throughput(server, 40 if quick else 200, 0.2, 8)
    if as_json:
        print(json.dumps({"overhead": rows, "throughput": flow}, indent=2))
        return
    print(install_note())
    print()
    print(table("client overhead per call, streamed, loopback (median ms); target <= 1.2x",
                ["provider", "bare SDK ms", "through Zoo ms", "ratio", "target"],
                [[r["provider"], r["bare_ms"], r["zoo_ms"], f"{r['ratio']:.2f}x",
                  "ok" if r["ratio"] <= 1.2 else "MISSED"] for r in rows]))  # fmt: skip
    print()
    print(table(f"throughput: {flow['briefs']} briefs x 3 agents, {flow['delay_s']} s a call, "
                f"concurrency {flow['workers']}; target <= 1.1x ideal",
                ["steps", "done", "wall s", "ideal s", "ratio", "target"],
                [[flow["steps"], flow["done"], flow["wall_s"], flow["ideal_s"],
                  f"{flow['ratio']:.3f}x",
                  "ok" if flow["ratio"] <= 1.1 else "MISSED"]]))  # fmt: skip


if __name__ == "__main__":
    main()
