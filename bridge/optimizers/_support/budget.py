"""Hard caps on what a compile may spend, checked before every LM call.

A ``Budget`` holds the caps (``max_lm_calls``, ``max_cost``) and what has been spent. During a
compile every LM the optimizer touches is wrapped in a ``MeteredLM``: before it sends a request it
reserves one call from the budget, and when the budget is spent it raises ``BudgetExhausted``
instead of sending. The optimizer catches that, stops, and returns the best program found so far.

``BudgetExhausted`` derives from ``BaseException`` on purpose: a user's program or metric that
catches ``Exception`` must not swallow it and score the example 0.

Across workers: a budget is per process unless it is ``share``d with a ``StudyCounter``. Then the
calls and the cost are counted in a table of the study's database (one row per study, changed by
atomic ``UPDATE ... WHERE calls < cap`` statements), the caps hold for all the workers of the study
together, and every worker stops when the study's cap is reached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lmbridge.errors import TruncatedError
from lmbridge.lm import BaseLM, Completion, OptionScores

if TYPE_CHECKING:
    from lmbridge.formats import Constraint, PromptFormat
    from lmbridge.signatures import Signature
    from lmbridge.types import Message


class BudgetExhausted(BaseException):
    """Raised by a MeteredLM instead of sending a request once a cap is reached. Private to the
    optimizers: ``compile`` always catches it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Budget:
    """What a compile may spend and what it has spent. Thread-safe."""

    def __init__(self, max_lm_calls: int | None = None, max_cost: float | None = None) -> None:
        if max_lm_calls is not None and max_lm_calls < 0:
            raise ValueError(f"max_lm_calls must be >= 0, not {max_lm_calls}")
        if max_cost is not None and max_cost < 0:
            raise ValueError(f"max_cost must be >= 0, not {max_cost}")
        self.max_lm_calls = max_lm_calls
        self.max_cost = max_cost
        self.calls = 0
        """Calls sent to a model (cache hits are free), including the ones in flight."""
        self.cost = 0.0
        self.unpriced: str | None = None
        """The model that answered without a price, when ``max_cost`` is set."""
        self.exhausted: str | None = None
        """Why the budget stopped the compile, once it has."""
        self._lock = threading.Lock()
        self.shared: StudyCounter | None = None
        """When set, the caps hold for every worker of a study together (see ``share``)."""

    def share(self, counter: StudyCounter) -> None:
        """Count against ``counter``: the caps then apply to the whole study, across workers and restarts."""
        self.shared = counter

    @property
    def limited(self) -> bool:
        return self.max_lm_calls is not None or self.max_cost is not None

    def reserve(self) -> None:
        """Take one call from the budget, or raise BudgetExhausted."""
        with self._lock:
            reason = self._reason()
            if reason is None and self.shared is not None and not self.shared.reserve(self.max_lm_calls,
                                                                                      self.max_cost):
                reason = self.shared.reason(self.max_lm_calls, self.max_cost)
            if reason is not None:
                self.exhausted = self.exhausted or reason
                raise BudgetExhausted(reason)
            self.calls += 1

    def _reason(self) -> str | None:
        if self.shared is None and self.max_lm_calls is not None and self.calls >= self.max_lm_calls:
            return f"max_lm_calls={self.max_lm_calls} reached"
        if self.max_cost is not None:
            if self.unpriced is not None:
                return (f"max_cost={self.max_cost} cannot be enforced: {self.unpriced} reports no price; "
                        "stopped after its first call")
            if self.shared is None and self.cost >= self.max_cost:
                return f"max_cost=${self.max_cost:g} reached (spent ${self.cost:.4f})"
        return None

    def settle(self, completion: Completion, model: str) -> None:
        """Account for a finished request: a cache hit gives its call back; a cost is added."""
        with self._lock:
            if completion.cached:
                self.calls -= 1
                if self.shared is not None:
                    self.shared.add(-1, 0.0)
            if completion.usage.cost is not None:
                self.cost += completion.usage.cost
                if self.shared is not None and completion.usage.cost:
                    self.shared.add(0, completion.usage.cost)
            elif not completion.cached and self.max_cost is not None:
                self.unpriced = model

    def release(self) -> None:
        """Give back a reserved call whose request failed before reaching the model."""
        with self._lock:
            self.calls -= 1
            if self.shared is not None:
                self.shared.add(-1, 0.0)

    def wrap(self, lm: BaseLM | None) -> BaseLM | None:
        """``lm`` metered against this budget (None stays None; a metered LM is re-wrapped)."""
        if lm is None:
            return None
        inner = lm.inner if isinstance(lm, MeteredLM) else lm
        return MeteredLM(inner, self)


class MeteredLM(BaseLM):
    """Delegates to ``inner`` after taking a call from the budget. It has no cache, history or
    usage of its own: the inner LM records everything, so usage is never counted twice."""

    def __init__(self, inner: BaseLM, budget: Budget) -> None:
        super().__init__(inner.model, cache=False, num_retries=0)
        self.inner = inner
        self.budget = budget

    @contextmanager
    def _taken(self) -> Iterator[None]:
        """One call taken from the budget, given back if the call fails (the caller settles a
        success with what it cost); sync and async calls differ only in the await inside."""
        self.budget.reserve()
        try:
            yield
        except TruncatedError:
            raise  # the request completed (and was billed): its call stays taken
        except Exception:
            self.budget.release()
            raise

    def supports_json_mode(self) -> bool:
        return self.inner.supports_json_mode()

    def supports_function_calling(self) -> bool:
        return self.inner.supports_function_calling()

    def constraint_params(self, constraint: Constraint) -> dict[str, Any]:
        return self.inner.constraint_params(constraint)

    def supports_logprobs(self) -> bool:
        return self.inner.supports_logprobs()

    def score_options(self, messages: list[Message], options: list[str],
                      params: dict[str, Any] | None = None) -> OptionScores:
        with self._taken():
            scores = self.inner.score_options(messages, options, params)
        self.budget.settle(Completion("", scores.usage, scores.cached), self.inner.model)
        return scores

    def complete(self, messages: list[Message], params: dict[str, Any] | None = None, *,
                 signature: type[Signature] | None = None, fmt: PromptFormat | None = None) -> Completion:
        with self._taken():
            completion = self.inner.complete(messages, params, signature=signature, fmt=fmt)
        self.budget.settle(completion, self.inner.model)
        return completion

    async def acomplete(self, messages: list[Message], params: dict[str, Any] | None = None, *,
                        signature: type[Signature] | None = None,
                        fmt: PromptFormat | None = None) -> Completion:
        with self._taken():
            completion = await self.inner.acomplete(messages, params, signature=signature, fmt=fmt)
        self.budget.settle(completion, self.inner.model)
        return completion

    def __repr__(self) -> str:
        return f"MeteredLM({self.inner!r})"


class StudyCounter:
    """The LM calls and cost of one study, summed over its workers, in the table ``lmbridge_budget`` of
    the study's database (any SQLAlchemy URL optuna can use). A killed worker's call in flight stays
    counted: it may have been billed."""

    def __init__(self, url: str, study: str) -> None:
        import sqlalchemy as sa  # optional: comes with optuna (lmbridge[optuna]), imported only here

        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 120}
        self.study = study
        self.engine = sa.create_engine(url, **kwargs)
        meta = sa.MetaData()
        self.table = sa.Table("lmbridge_budget", meta,
                              sa.Column("study", sa.String(512), primary_key=True),
                              sa.Column("calls", sa.BigInteger, nullable=False),
                              sa.Column("cost", sa.Float, nullable=False))
        for attempt in range(5):  # workers starting together race to create the table and the row
            try:
                meta.create_all(self.engine)
                with self.engine.begin() as conn:
                    found = conn.execute(sa.select(self.table.c.study).where(self.table.c.study == study)).first()
                    if found is None:
                        conn.execute(sa.insert(self.table).values(study=study, calls=0, cost=0.0))
                break
            except sa.exc.SQLAlchemyError:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def reserve(self, max_calls: int | None, max_cost: float | None) -> bool:
        """Take one call if the study is under both caps (one atomic UPDATE)."""
        import sqlalchemy as sa  # optional, see above

        t = self.table
        stmt = sa.update(t).where(t.c.study == self.study).values(calls=t.c.calls + 1)
        if max_calls is not None:
            stmt = stmt.where(t.c.calls < max_calls)
        if max_cost is not None:
            stmt = stmt.where(t.c.cost < max_cost)
        with self.engine.begin() as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def add(self, calls: int, cost: float) -> None:
        import sqlalchemy as sa  # optional, see above

        t = self.table
        with self.engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.study == self.study)
                         .values(calls=t.c.calls + calls, cost=t.c.cost + cost))

    def read(self) -> tuple[int, float]:
        """(calls, cost) spent by the study so far."""
        import sqlalchemy as sa  # optional, see above

        t = self.table
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(t.c.calls, t.c.cost).where(t.c.study == self.study)).one()
        return int(row[0]), float(row[1])

    def reason(self, max_calls: int | None, max_cost: float | None) -> str:
        calls, cost = self.read()
        if max_calls is not None and calls >= max_calls:
            return f"max_lm_calls={max_calls} reached by the study's workers together"
        return f"max_cost=${max_cost:g} reached by the study's workers together (spent ${cost:.4f})"
