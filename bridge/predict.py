"""Predict, the one learnable unit, and ChainOfThought, a signature transform around it.

A Predict's state is its instructions (on its signature) and its demos. Optimizers change those
and nothing else. A call formats the messages, asks the LM, and parses the answer; an answer that
does not parse is re-asked once with the error shown, and the re-ask is counted in the usage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bridge.errors import ConfigurationError, InputError, ParseError
from bridge.formats import ChatFormat, PromptFormat
from bridge.labels import score_labels
from bridge.lm import BaseLM, Completion
from bridge.module import Module
from bridge.settings import current
from bridge.signature import Signature, SignatureLike, ensure_signature
from bridge.tracking import record_step, record_usage
from bridge.types import Example, Message, Prediction, Usage
from bridge.values import render

DEFAULT_FORMAT: PromptFormat = ChatFormat()


class Predict(Module):
    """Ask an LM to fill a signature's output fields from its input fields.

    ``lm`` and ``format`` override the settings for this predictor; ``lm_params`` (temperature,
    max_tokens, ...) go with each request. Inputs are the only thing passed at call time.
    """

    def __init__(self, signature: SignatureLike, *, lm: BaseLM | None = None, format: PromptFormat | None = None,
                 demos: Sequence[Mapping[str, Any]] | None = None, **lm_params: Any) -> None:
        self.signature: type[Signature] = ensure_signature(signature)
        self.demos: list[Example] = [d if isinstance(d, Example) else Example(d) for d in (demos or [])]
        self.lm = lm
        self.format = format
        self.lm_params = lm_params

    @property
    def instructions(self) -> str:
        return self.signature.instructions

    @instructions.setter
    def instructions(self, text: str) -> None:
        self.signature = self.signature.with_instructions(text)

    def __repr__(self) -> str:
        return f"Predict({self.signature.spec()!r}, demos={len(self.demos)})"

    # -- the call path -------------------------------------------------------------------------
    def _resolve(self) -> tuple[BaseLM, PromptFormat]:
        settings = current()
        lm = self.lm or settings.lm
        if lm is None:
            raise ConfigurationError(
                "no LM is configured: pass Predict(..., lm=...) or call "
                "bridge.configure(lm=bridge.LM('local/smollm2')) first")
        return lm, self.format or settings.format or DEFAULT_FORMAT

    def _check(self, inputs: Mapping[str, Any]) -> None:
        fields = self.signature.input_fields
        if len(inputs) != len(fields) or any(k not in fields for k in inputs):
            missing = [k for k in fields if k not in inputs]
            unknown = [k for k in inputs if k not in fields]
            parts = []
            if missing:
                parts.append(f"missing input field(s) {missing}")
            if unknown:
                parts.append(f"unknown field(s) {unknown}")
            raise InputError(f"{self.signature.__name__} ({self.signature.spec()}): {'; '.join(parts)}")

    def messages(self, **inputs: Any) -> list[Message]:
        """The exact messages this predictor would send for ``inputs``, without calling any model."""
        self._check(inputs)
        return self._resolve_format().format(self.signature, self.demos, inputs)

    def _resolve_format(self) -> PromptFormat:
        return self.format or current().format or DEFAULT_FORMAT

    def _params(self, lm: BaseLM, fmt: PromptFormat) -> dict[str, Any]:
        extra = fmt.request_params(self.signature) if lm.supports_json_mode() else {}
        extra = {**extra, **fmt.endpoint_params(self.signature)}
        constraint = fmt.constraint(self.signature)
        if constraint is not None:  # decoding constrained to the signature's types, where the LM can
            extra.update(lm.constraint_params(constraint))
        return {**extra, **self.lm_params} if extra else self.lm_params

    def _scored(self, lm: BaseLM, fmt: PromptFormat, inputs: dict[str, Any],
                params: dict[str, Any]) -> Prediction | None:
        """The label-scoring path (a format's ``scoring`` other than "generate"): the most probable
        option of a Literal/Enum/bool output, with no text sampled. None when it does not apply."""
        if fmt.scoring == "generate":
            return None
        scores = score_labels(lm, fmt, self.signature, self.demos, inputs, params)
        if scores is None:
            return None
        return self._finish(inputs, {scores.field: scores.choice}, scores.usage, render(scores.choice))

    def _first_parse(self, fmt: PromptFormat, completion: Completion) -> dict[str, Any] | ParseError:
        try:
            return fmt.parse(self.signature, completion.text)
        except ParseError as error:
            return error

    def _repair(self, messages: list[Message], fmt: PromptFormat, text: str, error: ParseError) -> list[Message]:
        return [*messages, {"role": "assistant", "content": text},
                {"role": "user", "content": fmt.repair(self.signature, error)}]

    def _second_parse(self, fmt: PromptFormat, first: str, completion: Completion, first_error: ParseError,
                      usage: Usage) -> dict[str, Any]:
        try:
            return fmt.parse(self.signature, completion.text)
        except ParseError as error:
            merged = fmt.merge(self.signature, first, completion.text, first_error)
            if merged is not None:
                try:
                    return fmt.parse(self.signature, merged)
                except ParseError:
                    pass
            raise ParseError(error.message, completion=completion.text, signature=self.signature.spec(),
                             field=error.field, attempts=2, usage=usage) from error

    def _finish(self, inputs: dict[str, Any], values: dict[str, Any], usage: Usage, text: str) -> Prediction:
        prediction = Prediction.from_values(values, usage, text)
        record_step(self, inputs, prediction)
        return prediction

    def forward(self, **inputs: Any) -> Prediction:
        self._check(inputs)
        lm, fmt = self._resolve()
        params = self._params(lm, fmt)
        scored = self._scored(lm, fmt, inputs, params)
        if scored is not None:
            return scored
        messages = fmt.format(self.signature, self.demos, inputs)
        completion = lm.complete(messages, params, signature=self.signature, fmt=fmt)
        values = self._first_parse(fmt, completion)
        if not isinstance(values, ParseError):
            return self._finish(inputs, values, completion.usage, completion.text)
        record_usage(Usage(parse_retries=1))
        second = lm.complete(self._repair(messages, fmt, completion.text, values), _unconstrained(params),
                             signature=self.signature, fmt=fmt)
        usage = completion.usage + second.usage + Usage(parse_retries=1)
        values = self._second_parse(fmt, completion.text, second, values, usage)
        return self._finish(inputs, values, usage, second.text)

    async def aforward(self, **inputs: Any) -> Prediction:
        self._check(inputs)
        lm, fmt = self._resolve()
        params = self._params(lm, fmt)
        if fmt.scoring != "generate":
            import asyncio

            scored = await asyncio.to_thread(self._scored, lm, fmt, inputs, params)
            if scored is not None:
                return scored
        messages = fmt.format(self.signature, self.demos, inputs)
        completion = await lm.acomplete(messages, params, signature=self.signature, fmt=fmt)
        values = self._first_parse(fmt, completion)
        if not isinstance(values, ParseError):
            return self._finish(inputs, values, completion.usage, completion.text)
        record_usage(Usage(parse_retries=1))
        second = await lm.acomplete(self._repair(messages, fmt, completion.text, values), _unconstrained(params),
                                    signature=self.signature, fmt=fmt)
        usage = completion.usage + second.usage + Usage(parse_retries=1)
        values = self._second_parse(fmt, completion.text, second, values, usage)
        return self._finish(inputs, values, usage, second.text)

    # A Predict's own usage is exact already: skip the tracker the base class puts around forward.
    def __call__(self, **inputs: Any) -> Prediction:
        return self.forward(**inputs)

    async def acall(self, **inputs: Any) -> Prediction:
        return await self.aforward(**inputs)


def _unconstrained(params: dict[str, Any]) -> dict[str, Any]:
    """The re-ask's parameters: its answer is only the missing part, so the whole-answer grammar goes."""
    return {k: v for k, v in params.items() if k != "grammar"} if "grammar" in params else params


class ChainOfThought(Module):
    """Predict with a ``reasoning`` output field put before the others; the reasoning comes back
    in the Prediction. Its one predictor is ``self.predict``."""

    def __init__(self, signature: SignatureLike, *, rationale_desc: str = "think it through step by step",
                 **predict_options: Any) -> None:
        from bridge.signature import OutputField

        base = ensure_signature(signature)
        extended = base.prepend("reasoning", OutputField(desc=rationale_desc), str)
        self.predict = Predict(extended, **predict_options)

    def forward(self, **inputs: Any) -> Prediction:
        return self.predict(**inputs)

    async def aforward(self, **inputs: Any) -> Prediction:
        return await self.predict.acall(**inputs)

    def __call__(self, **inputs: Any) -> Prediction:
        return self.predict(**inputs)

    async def acall(self, **inputs: Any) -> Prediction:
        return await self.predict.acall(**inputs)
