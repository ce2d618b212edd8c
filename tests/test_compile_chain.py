"""from_chain / ChainProgram / compile_chain: the prompts inside a user's LangChain chain, learned in place."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from pydantic import Field

import lmbridge

pytest.importorskip("langchain_core")

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.runnables import RunnableBranch, RunnableLambda, RunnableParallel

from lmbridge.adapters.langchain import ChainProgram, compile_chain, from_chain


class RuleModel(BaseChatModel):
    """Answers the sentiment right only when the prompt shows it an example turn; records every request."""

    seen: list[list[BaseMessage]] = Field(default_factory=list, repr=False)
    fail: bool = False

    @property
    def _llm_type(self) -> str:
        return "rule"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        if self.fail:
            raise ConnectionError("the provider is down")
        last = str(messages[-1].content)
        if "Rewrite" in str(messages[0].content):
            answer = f"rewritten: {last}"
        elif any(m.type == "ai" for m in messages):
            answer = "positive" if "good" in last else "negative"
        else:
            answer = "unsure"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])


def rows(n: int = 4) -> list[lmbridge.Example]:
    base = [("a good film", "positive"), ("a bad film", "negative"), ("so good", "positive"), ("awful", "negative")]
    return [lmbridge.Example(text=t, label=lab).with_inputs("text") for t, lab in (base * 6)[:n]]


def accuracy(chain: Any, examples: list[lmbridge.Example]) -> float:
    return sum(chain.invoke({"text": e.text}) == e.label for e in examples) / len(examples)


def exact(example: lmbridge.Example, output: Any, trace: Any = None) -> bool:
    return bool(output == example.label)


def sentiment_chain(model: RuleModel | None = None) -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", "Classify the sentiment."), ("human", "Review: {text}")])
    return prompt | (model or RuleModel()) | StrOutputParser()


def test_prompts_are_found_through_nested_steps_and_named_by_where_they_sit() -> None:
    model = RuleModel()
    rewrite = PromptTemplate.from_template("Rewrite the question.\n\nQuestion: {text}\nRewritten:")
    answer = ChatPromptTemplate.from_messages([("human", "{q}")])
    other = ChatPromptTemplate.from_messages([("human", "other {q}")])
    chain = (RunnableParallel(q=rewrite | model.bind(stop=["x"]) | StrOutputParser())
             | RunnableBranch((lambda d: "?" in d["q"], other), answer.with_retry()).with_fallbacks([other])
             | model | StrOutputParser())
    names = [name for name, _ in from_chain(chain).named_predictors()]
    assert names == ["step0.q.step0", "step1.branch0", "step1.default", "step1.fallback0"]
    assert from_chain(rewrite).named_predictors()[0][0] == "prompt"
    assert from_chain(rewrite).named_predictors()[0][1].instructions == "Rewrite the question."


def test_no_prompt_says_what_was_found() -> None:
    with pytest.raises(lmbridge.ConfigurationError, match=r"found: RunnableLambda, RuleModel"):
        from_chain(RunnableLambda(lambda x: x) | RuleModel())


def test_compile_learns_demos_as_chat_turns_and_never_mutates_the_chain() -> None:
    chain = sentiment_chain()
    before = dumps(chain)
    compiled = compile_chain(chain, trainset=rows(12), metric=exact)
    assert dumps(chain) == before  # the user's chain is untouched
    assert accuracy(chain, rows(8)) == 0.0
    assert accuracy(compiled, rows(8)) == 1.0
    prompt = compiled.first  # type: ignore[attr-defined]
    kinds = [m.type if isinstance(m, BaseMessage) else type(m).__name__ for m in prompt.messages]
    assert kinds[0] == "system" and kinds[-1] == "HumanMessagePromptTemplate" and "ai" in kinds
    assert compiled.middle[0] is chain.middle[0] and compiled.last is chain.last  # type: ignore[attr-defined]


def test_string_template_demos_are_example_blocks_in_its_own_shape() -> None:
    template = PromptTemplate.from_template("Classify {{it}}.\n\nReview: {text}\nSentiment:")
    program = from_chain(template | RuleModel() | StrOutputParser(), output="label")
    predictor = program.named_predictors()[0][1]
    assert predictor.instructions == "Classify {it}."
    predictor.demos = [lmbridge.Example(text="great", label="positive")]
    predictor.instructions = "Say {positive} or negative."
    text = program.to_chain().first.format(text="meh")  # type: ignore[attr-defined]
    assert text == "Say {positive} or negative.\n\nReview: great\nSentiment: positive\n\nReview: meh\nSentiment:"


def test_bootstrapped_demos_hold_each_prompts_own_variables_and_reply() -> None:
    model = RuleModel()
    rewrite = ChatPromptTemplate.from_messages([("system", "Rewrite it."), ("human", "{text}")])
    judge = ChatPromptTemplate.from_messages([("system", "Judge."), ("human", "{rewritten}")])
    chain = {"rewritten": rewrite | model | StrOutputParser()} | judge | model | StrOutputParser()
    program = from_chain(chain)
    compiled = lmbridge.BootstrapFewShot(lambda e, o, t=None: True, max_bootstrapped_demos=2,
                                         max_labeled_demos=0).compile(program, trainset=rows(2))
    demos = dict(compiled.named_predictors())
    assert [dict(d) for d in demos["step0.rewritten.step0"].demos] == [
        {"text": "a good film", "output": "rewritten: a good film"},
        {"text": "a bad film", "output": "rewritten: a bad film"}]
    assert dict(demos["step1"].demos[0]) == {"rewritten": "rewritten: a good film", "output": "unsure"}
    assert program.named_predictors()[0][1].demos == []  # the student is untouched


def test_state_saves_and_loads_onto_a_fresh_program(tmp_path: Any) -> None:
    program = from_chain(sentiment_chain(), output="label")
    compiled = lmbridge.LabeledFewShot(k=2).compile(program, trainset=rows(4))
    compiled.save(tmp_path / "chain.json")
    fresh = from_chain(sentiment_chain(), output="label").load(tmp_path / "chain.json")
    assert isinstance(fresh, ChainProgram)
    assert dumps(fresh.to_chain()) == dumps(compiled.to_chain())  # type: ignore[attr-defined]
    with pytest.raises(lmbridge.StateError):
        from_chain(ChatPromptTemplate.from_messages([("human", "{x}")]) | RuleModel()).load(tmp_path / "chain.json")


def test_acall_runs_through_ainvoke() -> None:
    program = from_chain(sentiment_chain(), output="label")
    program.named_predictors()[0][1].demos = [lmbridge.Example(text="good", label="positive")]
    assert asyncio.run(program.acall(text="good one")) == "positive"


def test_a_missing_variable_fails_before_any_model_call() -> None:
    model = RuleModel()
    model.seen.clear()
    bad = [lmbridge.Example(review="x", label="positive").with_inputs("review")] * 3
    with pytest.raises(lmbridge.InputError, match=r"\['text'\]"):
        compile_chain(sentiment_chain(model), trainset=bad, metric=exact)
    assert model.seen == []


def test_a_parser_failure_is_a_counted_parse_error_and_a_model_failure_an_lm_error() -> None:
    def strict(text: str) -> str:
        raise OutputParserException("not a label", llm_output=text)

    program = from_chain(sentiment_chain() | RunnableLambda(strict))
    with pytest.raises(lmbridge.ParseError) as caught:
        program(text="x")
    assert caught.value.completion == "unsure"
    result = lmbridge.Evaluate(devset=rows(2), metric=exact, display_progress=False)(program)
    assert result.score == 0.0 and all(r.error for r in result.results)
    failing = from_chain(sentiment_chain(RuleModel(fail=True)))
    with pytest.raises(lmbridge.LMError, match="provider is down"):
        failing(text="x")


def test_a_metric_that_fails_stops_the_compile_and_leaves_the_chain() -> None:
    chain = sentiment_chain()
    before = dumps(chain)

    def broken(example: Any, output: Any, trace: Any = None) -> float:
        raise KeyError("answer")

    with pytest.raises(lmbridge.EvaluationError, match="metric"):
        compile_chain(chain, trainset=rows(4), metric=broken)
    assert dumps(chain) == before


def test_candidates_in_threads_each_run_their_own_prompts() -> None:
    program = from_chain(sentiment_chain(), output="label")
    with_demo = program.deepcopy()
    with_demo.named_predictors()[0][1].demos = [lmbridge.Example(text="good", label="positive")]
    results: dict[str, list[Any]] = {"plain": [], "demo": []}

    def run(name: str, prog: Any) -> None:
        for _ in range(20):
            results[name].append(prog(text="good one"))

    threads = [threading.Thread(target=run, args=a) for a in (("plain", program), ("demo", with_demo))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results["plain"]) == {"unsure"} and set(results["demo"]) == {"positive"}


def test_exported_chain_sends_the_same_messages_and_runs_without_lmbridge(tmp_path: Any) -> None:
    model = RuleModel()
    program = from_chain(sentiment_chain(model), output="label")
    compiled = lmbridge.LabeledFewShot(k=2).compile(program, trainset=rows(4))
    model.seen.clear()
    compiled(text="a good day")
    during = [(m.type, m.content) for m in model.seen[-1]]
    exported = compiled.to_chain()  # type: ignore[attr-defined]
    model.seen.clear()
    exported.invoke({"text": "a good day"})
    assert [(m.type, m.content) for m in model.seen[-1]] == during
    (tmp_path / "prompt.json").write_text(dumps(exported.first))
    script = ("import sys, json; sys.modules['lmbridge'] = None\n"
              "from langchain_core.load import loads\n"
              f"prompt = loads(open({str(tmp_path / 'prompt.json')!r}).read())\n"
              "print(json.dumps([[m.type, m.content] for m in prompt.invoke({'text': 'a good day'}).to_messages()]))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ})
    assert [tuple(m) for m in json.loads(out.stdout)] == during


def test_the_chains_runs_show_in_langchain_callbacks_under_lmbridges_runs() -> None:
    from langchain_core.callbacks import BaseCallbackHandler, CallbackManager

    from lmbridge.adapters.langchain import LangChainCallback

    class Runs(BaseCallbackHandler):
        def __init__(self) -> None:
            self.parents: dict[Any, Any] = {}
            self.names: dict[Any, str] = {}

        def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any, parent_run_id: Any = None,
                           **kwargs: Any) -> None:
            self.parents[run_id], self.names[run_id] = parent_run_id, kwargs.get("name") or ""

        def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: Any, parent_run_id: Any = None,
                                **kwargs: Any) -> None:
            self.parents[run_id], self.names[run_id] = parent_run_id, "model"

    runs = Runs()
    outer = CallbackManager(handlers=[runs], inheritable_handlers=[runs]).on_chain_start({}, {}, name="outer")
    program = from_chain(sentiment_chain(), output="label")
    with lmbridge.context(callbacks=[LangChainCallback(outer)]):
        lmbridge.Evaluate(devset=rows(1), metric=exact, display_progress=False)(program)
    assert "model" in runs.names.values(), runs.names
    model = next(r for r, n in runs.names.items() if n == "model")
    chain: list[str] = []
    node = model
    while node is not None:
        chain.append(runs.names.get(node, "?"))
        node = runs.parents.get(node)
    assert chain[0] == "model" and "RunnableSequence" in chain and chain[-1] == "outer"
    assert chain.index("RunnableSequence") < chain.index("ChainProgram")


def test_an_interrupted_compile_resumes_from_its_checkpoint(tmp_path: Any) -> None:
    class Interrupt(BaseException):
        pass

    calls: list[int] = []

    def stop_after(n: int) -> Any:
        def step(value: Any) -> Any:
            calls.append(1)
            if len(calls) > n:
                raise Interrupt
            return value
        return RunnableLambda(step)

    optimizer = lmbridge.BootstrapFewShot(exact, max_bootstrapped_demos=4, max_labeled_demos=2, num_threads=1)
    ck = tmp_path / "ck.json"
    with pytest.raises(Interrupt):
        optimizer.compile(from_chain(sentiment_chain() | stop_after(2), output="label"), trainset=rows(6),
                          checkpoint=ck)
    calls.clear()
    resumed = optimizer.compile(from_chain(sentiment_chain() | stop_after(100), output="label"), trainset=rows(6),
                                checkpoint=ck)
    assert len(calls) == 2  # the two finished examples are read back; two more give the 4 demos
    assert resumed.report is not None and resumed.report["resumed"] is True
    assert len(resumed.named_predictors()[0][1].demos) == 4


def test_few_shot_and_jinja2_templates_learn_in_their_own_shape() -> None:
    from langchain_core.prompts import FewShotPromptTemplate

    few = FewShotPromptTemplate(examples=[{"review": "fine", "sentiment": "positive"}],
                                example_prompt=PromptTemplate.from_template("Review: {review}\nSentiment: {sentiment}"),
                                prefix="Classify the review.", suffix="Review: {review}\nSentiment:",
                                input_variables=["review"])
    program = from_chain(few | RuleModel(), output="sentiment")
    predictor = program.named_predictors()[0][1]
    assert predictor.instructions == "Classify the review."
    predictor.instructions = "Label the review."
    predictor.demos = [lmbridge.Example(review="dull", sentiment="negative")]
    text = program.to_chain().first.format(review="nice")  # type: ignore[attr-defined]
    assert text == ("Label the review.\n\nReview: fine\nSentiment: positive\n\nReview: dull\nSentiment: negative"
                    "\n\nReview: nice\nSentiment:")
    assert few.examples == [{"review": "fine", "sentiment": "positive"}]  # the user's template is unchanged
    jinja = PromptTemplate.from_template("Be brief.\n\nQ: {{ q }}\nA:", template_format="jinja2")
    program = from_chain(jinja | RuleModel())
    predictor = program.named_predictors()[0][1]
    predictor.demos = [lmbridge.Example(q="{{ 1 }}", output="one")]
    assert program.to_chain().first.format(q="2?") == "Be brief.\n\nQ: {{ 1 }}\nA: one\n\nQ: 2?\nA:"  # type: ignore[attr-defined]


def test_the_lm_call_budget_meters_the_chains_own_model() -> None:
    from lmbridge.adapters.langchain import BridgeChatModel
    from lmbridge.testing import ScriptedLM

    lm = ScriptedLM(lambda messages: "positive")
    prompt = ChatPromptTemplate.from_messages([("human", "Review: {text}")])
    chain = prompt | BridgeChatModel(lm=lm) | StrOutputParser()
    capped = lmbridge.BootstrapFewShot(exact, max_bootstrapped_demos=4, max_labeled_demos=0, max_lm_calls=2,
                                       num_threads=1)
    compiled = capped.compile(from_chain(chain, output="label"), trainset=rows(8))
    assert len(lm.calls) == 2
    assert compiled.report is not None and compiled.report["stopped_early"]
    assert compiled.named_predictors()[0][1].lm is lm  # the compiled program holds the chain's LM, not the meter


def test_mipro_searches_instructions_and_demos_of_a_chains_prompts_not_formats() -> None:
    pytest.importorskip("optuna")
    from lmbridge.testing import ScriptedLM

    proposer = ScriptedLM(lambda messages: "Instruction: Label the review as positive or negative.")
    optimizer = lmbridge.MIPROv2(exact, prompt_model=proposer, auto="light", max_bootstrapped_demos=2,
                                 max_labeled_demos=2, num_threads=1, display_progress=False)
    chain = sentiment_chain()
    compiled = compile_chain(chain, trainset=rows(12), metric=exact, optimizer=optimizer)
    assert accuracy(compiled, rows(8)) == 1.0
    assert optimizer.formats  # the caller's optimizer keeps its own settings


def test_a_chain_invoked_with_a_bare_value_takes_input_key() -> None:
    from langchain_core.runnables import RunnablePassthrough

    chain = {"text": RunnablePassthrough()} | sentiment_chain()
    compiled = compile_chain(chain, trainset=rows(12), metric=exact, input_key="text")
    assert compiled.invoke("a good one") == "positive" and chain.invoke("a good one") == "unsure"
    with pytest.raises(lmbridge.InputError, match="input_key"):
        from_chain(chain, input_key="text")(text="x", other="y")
