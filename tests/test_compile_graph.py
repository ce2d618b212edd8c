"""from_chain / compile_chain on LangGraph graphs: the prompts inside a compiled graph's nodes (and its
subgraphs), learned in place, with the user's graph never mutated."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field

import lmbridge

pytest.importorskip("langchain_core")
pytest.importorskip("langgraph")

from langchain_core.language_models import BaseChatModel
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from lmbridge.adapters.langchain import ChainProgram, compile_chain, from_chain, learnable


class RuleModel(BaseChatModel):
    """Rewrites when asked to; without an example turn it knows only positive reviews ("unsure" otherwise)."""

    seen: list[list[BaseMessage]] = Field(default_factory=list, repr=False)

    @property
    def _llm_type(self) -> str:
        return "rule"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        last = str(messages[-1].content)
        if "Rewrite" in str(messages[0].content):
            answer = f"rewritten: {last}"
        elif any(m.type == "ai" for m in messages):
            answer = "positive" if "good" in last else "negative"
        else:
            answer = "positive" if "good" in last else "unsure"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])


class State(TypedDict, total=False):
    text: str
    rewritten: str
    label: str


def rows(n: int = 4) -> list[lmbridge.Example]:
    base = [("a good film", "positive"), ("a bad film", "negative"), ("so good", "positive"), ("awful", "negative")]
    return [lmbridge.Example(text=t, label=lab).with_inputs("text") for t, lab in (base * 6)[:n]]


def exact(example: lmbridge.Example, output: Any, trace: Any = None) -> bool:
    return bool(output["label"] == example.label)


def rewrite_node(model: RuleModel) -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", "Rewrite the review."), ("human", "{text}")])
    return prompt | model | StrOutputParser() | RunnableLambda(lambda s: {"rewritten": s})


def classify_node(model: RuleModel) -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", "Classify the sentiment."), ("human", "{rewritten}")])
    return prompt | model | StrOutputParser() | RunnableLambda(lambda s: {"label": s})


def two_node_graph(model: RuleModel | None = None) -> Any:
    model = model or RuleModel()
    graph = StateGraph(State)
    graph.add_node("rewrite", rewrite_node(model))
    graph.add_node("classify", classify_node(model))
    graph.add_edge(START, "rewrite")
    graph.add_edge("rewrite", "classify")
    graph.add_edge("classify", END)
    return graph.compile()


def test_prompts_in_graph_nodes_are_found_and_named_by_node() -> None:
    program = from_chain(two_node_graph())
    named = dict(program.named_predictors())
    assert list(named) == ["rewrite.step0", "classify.step0"]
    assert named["rewrite.step0"].instructions == "Rewrite the review."
    assert list(named["classify.step0"].signature.input_fields) == ["rewritten"]


def test_a_two_prompt_graph_compiles_end_to_end_without_mutating_the_graph() -> None:
    graph = two_node_graph()
    before = {name: dumps(node.bound) for name, node in graph.nodes.items() if name != START}
    bounds = {name: node.bound for name, node in graph.nodes.items()}
    program = from_chain(graph)
    compiled = lmbridge.BootstrapFewShot(exact, max_bootstrapped_demos=2, max_labeled_demos=0).compile(
        program, trainset=rows(8))
    demos = dict(compiled.named_predictors())
    # each prompt's demo is its own step: its variables and the model's reply to it, from a run that passed
    assert dict(demos["rewrite.step0"].demos[0]) == {"text": "a good film", "output": "rewritten: a good film"}
    assert dict(demos["classify.step0"].demos[0]) == {"rewritten": "rewritten: a good film", "output": "positive"}
    exported = compiled.to_chain()  # type: ignore[attr-defined]
    assert isinstance(exported, CompiledStateGraph)
    assert {name: dumps(node.bound) for name, node in graph.nodes.items() if name != START} == before
    assert all(graph.nodes[name].bound is bound for name, bound in bounds.items())
    assert graph.builder.nodes["classify"].runnable is bounds["classify"]
    assert exported.builder.nodes["classify"].runnable is exported.nodes["classify"].bound
    assert graph.invoke({"text": "awful"})["label"] == "unsure"
    assert exported.invoke({"text": "awful"})["label"] == "negative"
    assert exported.nodes["rewrite"].bound.middle[0] is graph.nodes["rewrite"].bound.middle[0]  # the user's model


def test_compile_chain_on_a_graph_returns_a_graph_that_beats_the_original() -> None:
    graph = two_node_graph()
    compiled = compile_chain(graph, trainset=rows(12), metric=exact)
    assert isinstance(compiled, CompiledStateGraph)
    assert all(compiled.invoke({"text": e.text})["label"] == e.label for e in rows(8))
    assert graph.invoke({"text": "awful"})["label"] == "unsure"


def test_prompts_inside_a_subgraph_are_found_and_compiled() -> None:
    model = RuleModel()
    inner = StateGraph(State)
    inner.add_node("classify", classify_node(model))
    inner.add_edge(START, "classify")
    inner.add_edge("classify", END)
    outer = StateGraph(State)
    outer.add_node("rewrite", rewrite_node(model))
    outer.add_node("judge", inner.compile())
    outer.add_edge(START, "rewrite")
    outer.add_edge("rewrite", "judge")
    outer.add_edge("judge", END)
    graph = outer.compile()
    program = from_chain(graph)
    assert [n for n, _ in program.named_predictors()] == ["rewrite.step0", "judge.classify.step0"]
    dict(program.named_predictors())["judge.classify.step0"].demos = [
        lmbridge.Example(rewritten="good", output="positive")]
    assert program(text="awful")["label"] == "negative"
    exported = program.to_chain()
    assert exported.invoke({"text": "awful"})["label"] == "negative"
    assert exported.nodes["judge"].subgraphs[0] is exported.nodes["judge"].bound
    assert graph.invoke({"text": "awful"})["label"] == "unsure"


def test_state_saves_and_loads_onto_a_fresh_graph_program(tmp_path: Any) -> None:
    program = from_chain(two_node_graph())
    dict(program.named_predictors())["classify.step0"].demos = [lmbridge.Example(rewritten="good", output="positive")]
    program.save(tmp_path / "graph.json")
    fresh = from_chain(two_node_graph()).load(tmp_path / "graph.json")
    assert isinstance(fresh, ChainProgram)
    assert fresh.to_chain().invoke({"text": "awful"})["label"] == "negative"


def test_a_graph_with_no_prompt_says_what_was_found() -> None:
    graph = StateGraph(State)
    graph.add_node("echo", lambda s: {"label": s["text"]})
    graph.add_edge(START, "echo")
    with pytest.raises(lmbridge.ConfigurationError, match=r"found: RunnableCallable"):
        from_chain(graph.compile())


MODEL = RuleModel()
CLASSIFY = learnable(ChatPromptTemplate.from_messages([("system", "Classify the sentiment."), ("human", "{text}")]),
                     name="classify")


def classify_in_a_function(state: State) -> State:
    """A function node that calls its prompt itself: out of reach of the chain walk."""
    return {"label": (CLASSIFY | MODEL | StrOutputParser()).invoke({"text": state["text"]})}


def function_graph() -> Any:
    graph = StateGraph(State)
    graph.add_node("classify", classify_in_a_function)
    graph.add_edge(START, "classify")
    return graph.compile()


def test_a_learnable_prompt_in_a_function_node_is_compiled_and_applied_from_saved_state(tmp_path: Any) -> None:
    graph = function_graph()
    program = from_chain(graph, output="label")
    assert [n for n, _ in program.named_predictors()] == ["classify"]
    compiled = lmbridge.BootstrapFewShot(exact, max_bootstrapped_demos=2, max_labeled_demos=0).compile(
        program, trainset=rows(8))
    predictor = dict(compiled.named_predictors())["classify"]
    assert dict(predictor.demos[0]) == {"text": "a good film", "label": "positive"}
    assert compiled(text="awful")["label"] == "negative"
    assert graph.invoke({"text": "awful"})["label"] == "unsure"  # outside the compile: the user's own prompt
    assert CLASSIFY.format_messages(text="x")[0].content == "Classify the sentiment."
    compiled.save(tmp_path / "graph.json")
    exported = from_chain(function_graph(), output="label").load(tmp_path / "graph.json").to_chain()
    assert isinstance(exported, CompiledStateGraph)
    assert exported.invoke({"text": "awful"})["label"] == "negative"


def test_candidates_reach_a_learnable_prompt_per_call_in_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    program = from_chain(function_graph(), output="label")
    taught = program.deepcopy()
    dict(taught.named_predictors())["classify"].demos = [lmbridge.Example(text="good", label="positive")]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda p: p(text="awful")["label"], [program, taught] * 8))
    assert got == ["unsure", "negative"] * 8


def test_learnable_refuses_what_it_cannot_learn() -> None:
    with pytest.raises(TypeError, match="prompt template"):
        learnable("Classify {text}", name="x")  # type: ignore[arg-type]
    with pytest.raises(lmbridge.ConfigurationError, match="name"):
        learnable(ChatPromptTemplate.from_messages([("human", "{text}")]), name="")


def test_a_graph_with_a_checkpointer_runs_each_example_on_its_own_and_exports_with_it() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    memory = InMemorySaver()
    graph = StateGraph(State)
    graph.add_node("classify", classify_node(RuleModel()))
    graph.add_edge(START, "classify")
    app = graph.compile(checkpointer=memory)
    program = from_chain(app)
    program.named_predictors()[0][1].demos = [lmbridge.Example(rewritten="good", output="positive")]
    assert program(rewritten="awful")["label"] == "negative"  # no thread_id needed
    assert list(memory.list(None)) == []  # nothing written to the user's checkpointer
    exported = program.to_chain()
    assert exported.checkpointer is memory
    assert exported.invoke({"rewritten": "awful"}, {"configurable": {"thread_id": "t"}})["label"] == "negative"


async def aclassify_in_a_function(state: State) -> State:
    return {"label": await (CLASSIFY | MODEL | StrOutputParser()).ainvoke({"text": state["text"]})}


def test_acall_runs_the_graph_and_a_learnable_prompt_through_ainvoke() -> None:
    import asyncio

    graph = StateGraph(State)
    graph.add_node("classify", aclassify_in_a_function)
    graph.add_edge(START, "classify")
    program = from_chain(graph.compile(), output="label")
    dict(program.named_predictors())["classify"].demos = [lmbridge.Example(text="good", label="positive")]
    assert asyncio.run(program.acall(text="awful"))["label"] == "negative"
    two = from_chain(two_node_graph())
    dict(two.named_predictors())["classify.step0"].demos = [lmbridge.Example(rewritten="good", output="positive")]
    assert asyncio.run(two.acall(text="awful"))["label"] == "negative"


def _label_of(text: str) -> str:  # a helper the node calls: its prompt is found one call deep
    return (CLASSIFY | MODEL | StrOutputParser()).invoke({"text": text})


def test_a_learnable_prompt_is_found_through_a_helper_and_its_name_must_be_its_own() -> None:
    graph = StateGraph(State)
    graph.add_node("classify", lambda state: {"label": _label_of(state["text"])})
    graph.add_edge(START, "classify")
    program = from_chain(graph.compile(), output="label")
    assert [n for n, _ in program.named_predictors()] == ["classify"]
    other = learnable(ChatPromptTemplate.from_messages([("human", "{text}")]), name="classify")
    both = StateGraph(State)
    both.add_node("a", lambda state: {"label": _label_of(state["text"])})
    both.add_node("b", lambda state: {"label": other.invoke(state).to_string()})
    both.add_edge(START, "a")
    both.add_edge("a", "b")
    with pytest.raises(lmbridge.ConfigurationError, match=r"two different learnable prompts are named \['classify'\]"):
        from_chain(both.compile())
    same = learnable(ChatPromptTemplate.from_messages([("human", "{text}")]), name="x.step0")
    clash = StateGraph(State)
    clash.add_node("a", lambda state: {"label": same.invoke(state).to_string()})
    clash.add_node("x", classify_node(RuleModel()))
    clash.add_edge(START, "a")
    with pytest.raises(lmbridge.ConfigurationError, match=r"named \['x.step0'\], as a prompt found"):
        from_chain(clash.compile())


def test_the_exported_graph_sends_the_messages_the_program_sent() -> None:
    model = RuleModel()
    program = from_chain(two_node_graph(model))
    for _, predictor in program.named_predictors():
        predictor.instructions = "Rewrite it {carefully}." if "Rewrite" in predictor.instructions else "Label it."
    dict(program.named_predictors())["classify.step0"].demos = [lmbridge.Example(rewritten="good", output="positive")]
    program(text="awful")
    during, model.seen[:] = list(model.seen), []
    program.to_chain().invoke({"text": "awful"})
    assert [[(m.type, m.content) for m in call] for call in model.seen] == \
        [[(m.type, m.content) for m in call] for call in during]
    assert during[0][0].content == "Rewrite it {carefully}." and during[1][0].content == "Label it."


PLAIN = ChatPromptTemplate.from_messages([("system", "Classify the sentiment."), ("human", "{text}")])


def classify_with_a_plain_prompt(state: State) -> State:
    return {"label": (PLAIN | MODEL | StrOutputParser()).invoke({"text": state["text"]})}


def test_a_plain_prompt_inside_a_function_node_is_named_not_silently_ignored() -> None:
    alone = StateGraph(State)
    alone.add_node("classify", classify_with_a_plain_prompt)
    alone.add_edge(START, "classify")
    with pytest.raises(lmbridge.ConfigurationError, match=r"used inside classify_with_a_plain_prompt.*learnable"):
        from_chain(alone.compile())
    mixed = StateGraph(State)
    mixed.add_node("rewrite", rewrite_node(RuleModel()))
    mixed.add_node("classify", classify_with_a_plain_prompt)
    mixed.add_edge(START, "rewrite")
    mixed.add_edge("rewrite", "classify")
    with pytest.warns(UserWarning, match="classify_with_a_plain_prompt is not learned"):
        program = from_chain(mixed.compile())
    assert [n for n, _ in program.named_predictors()] == ["rewrite.step0"]


def test_the_exported_graph_holds_no_lmbridge_object() -> None:
    from lmbridge.adapters.langchain._chain_walk import rewrite

    program = from_chain(two_node_graph())
    dict(program.named_predictors())["classify.step0"].demos = [lmbridge.Example(rewritten="good", output="positive")]
    exported = program.to_chain()
    seen: list[type] = [type(exported), *(type(n.bound) for n in exported.nodes.values())]
    rewrite(exported, lambda name, t: seen.append(type(t)) or t, lambda leaf: seen.append(type(leaf)) or leaf)
    assert not [t for t in seen if t.__module__.startswith("lmbridge")]
    assert exported.config in (None, {}) or "lmbridge:prompts" not in (exported.config.get("configurable") or {})
