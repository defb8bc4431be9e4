"""Budgets under concurrency: each call's estimate is reserved before it starts and settled
with its real usage after, under one lock, so parallel calls cannot all pass against the
same figure (issue 11, point 1)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest
from llmock.scenarios import Delay, Reply
from llmock.testing import LLMockServer

from tests.conftest import ZooCli, make_home
from tests.waiting import wait_for
from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.engine.zoo import Zoo
from zoo.errors import BudgetExceeded
from zoo.models.base import Model, Request, Usage, estimate_tokens
from zoo.models.base import Reply as ModelReply
from zoo.models.scripted import ScriptedModel, call, says
from zoo.roster import Budget
from zoo.state.home import Home
from zoo.state.journal import read_events
from zoo.state.runnerlock import runner_lock
from zoo.state.spend import Ledger, Spend

OUT_PRICE = 1000.0
"""USD per million output tokens: a call's estimate (a quarter of max_tokens = 1,024 output
tokens) costs $1.024, whatever its prompt, so two fit in $2.10 and three do not."""
DAILY = 2.1


def paid_roster(daily: float = DAILY, concurrency: int = 8) -> str:
    return f"""\
version: 1
name: budget
lead: roo
models:
  paid:
    provider: anthropic
    model: claude-haiku-4-5
    price: {{input_per_mtok: 0, output_per_mtok: {OUT_PRICE}}}
budget: {{daily_usd: {daily}}}
defaults: {{model: paid, concurrency: {concurrency}}}
agents:
  roo: {{role: Lead}}
  beaver: {{role: Developer, workspace: dev}}
"""


class Overlapping(Model):
    """Answers with `output` tokens. The calls of the first round are held until every
    worker thread is either in a call or waiting for budget, so they really overlap (and
    today's code, which let every call pass against the same figure, is caught)."""

    name = "overlapping"

    def __init__(self, ledger: Ledger, workers: int, output: int) -> None:
        self.ledger = ledger
        self.workers = workers
        self.output = output
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0
        self.calls = 0
        self.held = True
        self.estimates: list[int] = []

    def complete(self, request: Request) -> ModelReply:
        with self.lock:
            self.calls += 1
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.estimates.append(estimate_tokens(request)[1])
        # `waiting` changes under the ledger's lock, not this one: polled
        wait_for(lambda: not self.held or self.in_flight + self.ledger.waiting >= self.workers,
                 20, "the workers never all reached a call")  # fmt: skip
        with self.lock:
            self.held = False
            self.in_flight -= 1
        return ModelReply(text="Done.", usage=Usage(100, self.output), model="overlap")


def spend_of(home: Home) -> float:
    doc = json.loads((home.state / "spend.json").read_text(encoding="utf-8"))
    return float(next(iter(doc.values()))["usd"])


@pytest.mark.parametrize("concurrency", [4, 8])
@pytest.mark.parametrize("output", [1024, 1000, 1100])
def test_parallel_calls_never_take_spend_past_the_daily_budget(
    tmp_path: Path, concurrency: int, output: int
) -> None:
    home = make_home(tmp_path / "zoo", paid_roster(concurrency=concurrency))
    for i in range(8):
        dispatch(Zoo.open(home, env={}), f"Write note {i}", to="beaver")
    zoo = Zoo.open(home, env={})
    model = Overlapping(zoo.ledger, concurrency, output)
    zoo.models.override = model
    with runner_lock(home):
        run_once(zoo)
    estimate_usd = 1024 * OUT_PRICE / 1e6
    real_usd = output * OUT_PRICE / 1e6
    assert model.estimates == [1024] * model.calls
    spent = spend_of(home)
    # beyond the budget: what each call under way when the last one was let in used
    # beyond its estimate (two calls fit at once here)
    assert spent <= DAILY + 2 * max(0.0, real_usd - estimate_usd) + 1e-9
    assert model.most == 2  # the calls did overlap: as many as the budget holds
    replies = [e for e in read_events(home.journal_path) if e["event"] == "model.reply"]
    assert len(replies) == model.calls
    assert sum(float(e["usd"]) for e in replies) == pytest.approx(spent)  # type: ignore[arg-type]
    if output <= 1024:
        assert spent <= DAILY


def test_the_issues_repro_run_once_stays_within_the_daily_budget(
    tmp_path: Path, llm: LLMockServer, zoo_cli: ZooCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: priced at $1000 a million tokens, daily_usd 1.5, 8 briefs, `zoo run
    --once` ended at `$7.07 of $1.50`, with paid calls journaled after `budget.spent`."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    home = make_home(tmp_path / "zoo", f"""\
version: 1
name: repro
lead: roo
models:
  paid:
    provider: anthropic
    model: claude-haiku-4-5
    base_url: "{llm.url}/anthropic"
    price: {{input_per_mtok: 1000, output_per_mtok: 1000}}
budget: {{daily_usd: 1.5}}
defaults: {{model: paid, concurrency: 8, retries: 0}}
agents:
  roo: {{role: Lead}}
  beaver: {{role: Developer, workspace: dev}}
""")  # fmt: skip
    h = ["--home", str(home.root)]
    for i in range(8):
        assert zoo_cli("dispatch", f"Write note {i}", "--to", "beaver", *h).code == 0
    llm.state.scenarios.add(Delay(0.05, times=None), Reply(text="x" * 3000, times=None))
    zoo_cli("run", "--once", *h)
    spend = json.loads(zoo_cli("status", "--json", *h).out)["spend"]
    assert spend["budget_usd"] == 1.5
    assert 0 < spend["usd"] <= 1.5
    events = list(read_events(home.journal_path))
    paid = [float(e["usd"]) for e in events if e["event"] == "model.reply"]  # type: ignore[arg-type]
    assert sum(paid) == pytest.approx(spend["usd"])
    kinds = [e["event"] for e in events]
    if "budget.spent" in kinds:
        assert "model.reply" not in kinds[kinds.index("budget.spent") :]


def test_a_reservation_holds_its_estimate_until_settled_or_released(home: Home) -> None:
    ledger = Ledger(home)
    budget = Budget(daily_usd=1.0)
    first = ledger.reserve(budget, "beaver", 0.6, 100)
    assert ledger.reserved_usd() == pytest.approx(0.6) and ledger.today_usd() == 0.0
    # this thread holds the $0.60: it cannot wait for itself, so the call is refused
    with pytest.raises(
        BudgetExceeded,
        match=r"^daily budget: \$0\.00 spent today \(UTC\), "
        r"\$0\.60 held by calls under way, and the next call could cost "
        r"\$0\.5000, over budget\.daily_usd \(\$1\.00\)$",
    ):
        ledger.reserve(budget, "beaver", 0.5, 100)
    ledger.settle(first, Usage(10, 20), 0.25)
    assert ledger.reserved_usd() == 0.0 and ledger.today_usd() == pytest.approx(0.25)
    with pytest.raises(
        BudgetExceeded,
        match=r"^daily budget: \$0\.25 spent today \(UTC\) and "
        r"the next call could cost \$0\.8000, over budget\.daily_usd \(\$1\.00\)$",
    ):
        ledger.reserve(budget, "beaver", 0.8, 100)  # could never fit: refused at once
    second = ledger.reserve(budget, "owl", 0.7, 100)
    ledger.release(second)  # the call failed: nothing was spent
    assert ledger.reserved_usd() == 0.0 and ledger.today_usd() == pytest.approx(0.25)
    ledger.flush()
    doc = json.loads((home.state / "spend.json").read_text(encoding="utf-8"))
    day = next(iter(doc.values()))
    assert (day["usd"], day["input_tokens"], day["output_tokens"]) == (0.25, 10, 20)
    assert set(day["by_agent"]) == {"beaver"}


def test_spend_reserves_a_call_while_it_is_made_and_prices_it_at_the_tier_that_answered(
    home: Home,
) -> None:
    """The budget logic lives with the ledger: `Spend.call` estimates, reserves, calls, and
    settles (or releases), with prices the roster gives it."""
    prices = {"deep": 10.0, "fast": 1.0}  # USD per token out, per tier
    spend = Spend(Ledger(home), Budget(daily_usd=100.0),
                  lambda tier, usage: usage.output_tokens * prices[tier])  # fmt: skip
    request = Request(system="", messages=(), max_tokens=8)  # estimate: 2 tokens out
    assert spend.estimate("deep", request) == (20.0, 2)
    held: list[float] = []

    def answered_by_fast(_request: Request) -> ModelReply:
        held.append(spend.ledger.reserved_usd())
        return ModelReply(text="ok", usage=Usage(0, 3), tier="fast")

    reply, usd = spend.call("beaver", "deep", request, answered_by_fast, task="T-0001")
    assert (held, reply.text, usd) == ([20.0], "ok", 3.0)  # the fallback's price, not deep's
    assert spend.ledger.reserved_usd() == 0.0 and spend.ledger.today_usd() == 3.0

    def fails(_request: Request) -> ModelReply:
        raise RuntimeError("the server went away")

    with pytest.raises(RuntimeError):
        spend.call("beaver", "deep", request, fails)
    assert spend.ledger.reserved_usd() == 0.0 and spend.ledger.today_usd() == 3.0
    assert spend.add("owl", "fast", Usage(0, 2)) == 2.0 and not spend.daily_spent()
    with pytest.raises(BudgetExceeded, match=r"^daily budget: \$5\.00 spent today"):
        Spend(spend.ledger, Budget(daily_usd=20.0), spend.price).check("deep", request)
    assert Spend(spend.ledger, Budget(daily_usd=5.0), spend.price).daily_spent()


def wait_until_waiting(ledger: Ledger, n: int) -> None:
    wait_for(lambda: ledger.waiting >= n, 10, "no call came to wait for the budget", every=0.001)


def test_a_call_that_fits_once_others_settle_waits_for_them(home: Home) -> None:
    ledger = Ledger(home)
    budget = Budget(daily_usd=1.0)
    held = ledger.reserve(budget, "beaver", 0.6, 100)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(ledger.reserve(budget, "owl", 0.6, 100)))
    waiter.start()
    wait_until_waiting(ledger, 1)  # it waits for the call under way; it is not refused
    assert got == []
    ledger.settle(held, Usage(0, 100), 0.3)  # $0.30 spent + $0.60 fits in $1.00
    waiter.join(10)
    assert len(got) == 1 and ledger.reserved_usd() == pytest.approx(0.6)


def test_a_call_still_over_once_others_settle_is_refused_with_the_figures(home: Home) -> None:
    ledger = Ledger(home)
    budget = Budget(daily_usd=1.0)
    held = ledger.reserve(budget, "beaver", 0.6, 100)
    errors: list[BaseException] = []

    def second() -> None:
        try:
            ledger.reserve(budget, "owl", 0.6, 100)
        except BudgetExceeded as e:
            errors.append(e)

    waiter = threading.Thread(target=second)
    waiter.start()
    wait_until_waiting(ledger, 1)
    ledger.settle(held, Usage(0, 100), 0.6)
    waiter.join(10)
    assert [str(e) for e in errors] == [
        "daily budget: $0.60 spent today (UTC) and the next call could cost $0.6000, over "
        "budget.daily_usd ($1.00)"
    ]
    assert ledger.reserved_usd() == 0.0 and ledger.waiting == 0


def test_a_tasks_tokens_count_what_its_calls_under_way_hold(home: Home) -> None:
    ledger = Ledger(home)
    budget = Budget(task_tokens=1000)
    ledger.reserve(budget, "beaver", 0.0, 600, task="T-0001", task_used=100)
    ledger.reserve(budget, "owl", 0.0, 600, task="T-0002")  # another task's tokens are its own
    with pytest.raises(
        BudgetExceeded,
        match=r"^task token budget: 500 tokens used and the next "
        r"call could take 600 more, over budget.task_tokens \(1,000\)$",
    ):
        ledger.reserve(budget, "beaver", 0.0, 600, task="T-0003", task_used=500)
    # held by this very thread, the reservation cannot be waited for: refused, with the figure
    with pytest.raises(
        BudgetExceeded,
        match=r"^task token budget: 100 tokens used, 600 held by "
        r"calls under way, and the next call could take 400 more, over "
        r"budget.task_tokens \(1,000\)$",
    ):
        ledger.reserve(budget, "beaver", 0.0, 400, task="T-0001", task_used=100)


def test_the_routers_call_waits_for_the_budget_like_an_agents(tmp_path: Path) -> None:
    home = make_home(tmp_path / "zoo", paid_roster())
    scripted = ScriptedModel([says("", call("route", agent="beaver", reason="code", confidence=1))])
    zoo = Zoo.open(home, env={}, model=scripted)
    reserved, failed = threading.Event(), threading.Event()

    def call_under_way() -> None:  # holds $2.00 of the $2.10, then fails
        held = zoo.ledger.reserve(zoo.roster.budget, "beaver", DAILY - 0.1, 0)
        reserved.set()
        failed.wait(10)
        zoo.ledger.release(held)

    holder = threading.Thread(target=call_under_way)
    holder.start()
    assert reserved.wait(10)
    routed: list[str | None] = []
    router = threading.Thread(
        target=lambda: routed.append(dispatch(zoo, "Tidy up the module")[1].agent)
    )
    router.start()
    wait_until_waiting(zoo.ledger, 1)  # $2.00 held + the route's $0.128 > $2.10: it waits
    assert scripted.requests == []
    failed.set()
    holder.join(10)
    router.join(10)
    assert routed == ["beaver"] and len(scripted.requests) == 1
    [reply] = [e for e in read_events(home.journal_path) if e["event"] == "model.reply"]
    assert (reply["purpose"], reply["task"]) == ("route", "T-0001")
    scripted.assert_done()


def test_spend_being_written_to_spend_json_still_counts(home: Home) -> None:
    """While flush waits for the file (another process is writing spend.json), the spend
    it took out of memory still counts, so no reservation is decided against less."""
    from zoo.state.locks import lock

    ledger = Ledger(home)
    ledger.settle(ledger.reserve(Budget(daily_usd=1.0), "beaver", 0.5, 10), Usage(0, 10), 0.5)
    other = lock(home.state / "spend.lock")
    with other:
        flusher = threading.Thread(target=ledger.flush)
        flusher.start()
        wait_for(lambda: _in(flusher, "acquire"), 10, "flush never waited for the file lock",
                 every=0.001)  # fmt: skip
        assert ledger.today_usd() == pytest.approx(0.5)
        with pytest.raises(BudgetExceeded, match=r"^daily budget: \$0\.50 spent today"):
            ledger.reserve(Budget(daily_usd=1.0), "owl", 0.6, 10)
    flusher.join(10)
    assert ledger.today_usd() == pytest.approx(0.5) and spend_of(home) == 0.5


def _in(thread: threading.Thread, function: str) -> bool:
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False
