"""Extractive answers and the RAG module, on scripted models: the span grammar built per call, the
span check (never a rewrite), bad input, and the retrieval settings (k, retriever, query rewrite)
searched by MIPROv2, saved and restored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import lmbridge
from lmbridge.formats import ChatFormat, JSONFormat, TextFormat
from lmbridge.testing import ScriptedLM

PASSAGES = ["Denver Broncos defeated the Carolina Panthers 24-10 to win Super Bowl 50.",
            "Paris is the capital and most populous city of France."]


class QA(lmbridge.Signature):
    """Answer from the passages."""

    context: list[str] = lmbridge.InputField()
    question: str = lmbridge.InputField()
    answer: str = lmbridge.OutputField(extract_from="context")


# -- the declaration ---------------------------------------------------------------------------------

def test_an_extractive_field_must_copy_from_a_text_input_into_a_str_output() -> None:
    with pytest.raises(lmbridge.SignatureError, match="not one of its input fields"):
        class Missing(lmbridge.Signature):
            question: str = lmbridge.InputField()
            answer: str = lmbridge.OutputField(extract_from="context")
    with pytest.raises(lmbridge.SignatureError, match="str output"):
        class Number(lmbridge.Signature):
            context: str = lmbridge.InputField()
            year: int = lmbridge.OutputField(extract_from="context")
    with pytest.raises(lmbridge.SignatureError, match="list\\[str\\]"):
        class Counts(lmbridge.Signature):
            context: int = lmbridge.InputField()
            answer: str = lmbridge.OutputField(extract_from="context")
    # ChainOfThought's added reasoning field keeps the declaration on the answer
    cot = lmbridge.ChainOfThought(QA)
    assert cot.predict.signature.output_fields["answer"].extract_from == "context"


# -- the grammar, built per call from the passages -------------------------------------------------

def test_the_grammar_allows_the_passages_words_and_changes_with_each_call() -> None:
    one = ChatFormat().constraint_for(QA, {"context": PASSAGES, "question": "q"})
    two = ChatFormat().constraint_for(QA, {"context": ["Photosynthesis converts light."], "question": "q"})
    assert one is not None and two is not None and one.gbnf and two.gbnf
    assert '"Denver"' in one.gbnf and '" Broncos"' in one.gbnf and '"Paris"' in one.gbnf
    assert "Photosynthesis" not in one.gbnf and "Denver" not in two.gbnf
    assert "[^\\n]+" not in one.gbnf  # the answer is not free text
    # it may end as answers end (a stop or a line break), so a model that would stop there can
    assert 'root ::= " "? span0 ("." | "\\n")?' in one.gbnf
    # the same for the raw-prompt format; unconstrained formats and JSON have no span grammar
    text = TextFormat().constraint_for(QA, {"context": PASSAGES, "question": "q"})
    assert text is not None and text.gbnf is not None and '"Denver"' in text.gbnf
    assert ChatFormat(constrained=False).constraint_for(QA, {"context": PASSAGES, "question": "q"}) is None
    assert JSONFormat().constraint_for(QA, {"context": PASSAGES, "question": "q"}) == JSONFormat().constraint(QA)


def test_a_span_stops_at_a_line_break_and_at_the_word_limit() -> None:
    from lmbridge.formats._constrain import span_rules

    rules = span_rules(["alpha beta\ngamma delta"], "s", max_words=3)
    text = "\n".join(rules)
    assert '"\\ngamma"' not in text and '" beta"' in text and '" delta"' in text
    assert all(not line.split("::=")[0].strip().endswith("-3") for line in rules)  # 3 words: 2 links at most
    with pytest.raises(ValueError, match="no word"):
        span_rules(["..."], "s")


# -- the check on LMs that cannot constrain ------------------------------------------------------------

def test_an_answer_that_is_not_a_span_is_a_parse_error_never_rewritten() -> None:
    lm = ScriptedLM([{"answer": "the Broncos won"}, {"answer": "the Broncos won it"}])
    with pytest.raises(lmbridge.ParseError, match="not copied from the context") as info:
        lmbridge.Predict(QA, lm=lm)(context=PASSAGES, question="Who won Super Bowl 50?")
    assert info.value.attempts == 2 and len(lm.calls) == 2  # asked once more, with the error shown
    assert "not copied from the context" in str(lm.calls[1][-1]["content"])


def test_a_span_is_read_loosely_and_returned_as_written() -> None:
    lm = ScriptedLM([{"answer": "denver  broncos."}])
    pred = lmbridge.Predict(QA, lm=lm)(context=PASSAGES, question="Who won Super Bowl 50?")
    assert pred.answer == "denver  broncos."  # case, spacing and the final stop read loosely, not changed


def test_evaluate_counts_a_non_span_answer_as_a_failure_not_a_score() -> None:
    lm = ScriptedLM(lambda messages: {"answer": "Paris" if "France" in str(messages[-1]["content"])
                                      else "somewhere else"})
    rows = [lmbridge.Example(context=[PASSAGES[1]], question="capital?", answer="Paris").with_inputs(
                "context", "question"),
            lmbridge.Example(context=[PASSAGES[0]], question="who?", answer="Denver Broncos").with_inputs(
                "context", "question")]
    result = lmbridge.Evaluate(devset=rows, metric=lmbridge.metrics.exact_match("answer"), num_threads=1,
                               display_progress=False)(lmbridge.Predict(QA, lm=lm))
    assert result.errors == 1 and result.score == 50.0
    assert result.results[1].prediction is None and "ParseError" in str(result.results[1].error)


def test_no_passages_is_a_clear_error_before_any_call() -> None:
    lm = ScriptedLM([])
    for empty in ([], ["   "], None):
        with pytest.raises(lmbridge.InputError, match="no passage to copy from"):
            lmbridge.Predict(QA, lm=lm)(context=empty, question="q")
    assert lm.calls == []


# -- the RAG module ---------------------------------------------------------------------------------

DOCS = {f"d{i}": f"Topic {i} filler words. The code of item {i} is K{i}Z." for i in range(6)}


def second_best(query: str, k: int) -> list[lmbridge.Passage]:
    """A retriever that ranks a decoy first and the passage with the answer second."""
    i = int(query.split()[-1])
    decoy = lmbridge.Passage(f"Item {i} is often asked about.", 2.0)
    return [decoy, lmbridge.Passage(DOCS[f"d{i}"], 1.0), *(lmbridge.Passage(f"Other {j}.", 0.5) for j in range(4))][:k]


second_best.__len__ = None  # type: ignore[attr-defined]  # a function has no size: k is not bounded


def reader(messages: list[Any]) -> Any:
    """Copies the code when the passage holding it is in the prompt; otherwise a decoy span."""
    prompt = str(messages[-1]["content"])
    for i in range(6):
        if f"item {i} is K{i}Z" in prompt and f"code of item {i}" in prompt.rsplit("Question:", 1)[-1]:
            return {"answer": f"K{i}Z"}
    return {"answer": "Item"}


def code_rows(ids: range) -> list[lmbridge.Example]:
    return [lmbridge.Example(question=f"What is the code of item {i}", answer=f"K{i}Z").with_inputs("question")
            for i in ids]


def test_rag_answers_from_its_passages_and_returns_them() -> None:
    rag = lmbridge.RAG(second_best, k=2, lm=ScriptedLM(reader))
    pred = rag(question="What is the code of item 3")
    assert pred.answer == "K3Z" and [p.text for p in pred.passages][1] == DOCS["d3"]
    assert rag.settings() == {"k": 2, "retriever": "retriever", "rewrite": False}
    assert rag.setting_options() == {"k": [2, 1, 3, 5]}


def test_k_above_what_the_retriever_holds_is_refused() -> None:
    bm25 = lmbridge.BM25Retriever(PASSAGES)
    with pytest.raises(ValueError, match="k=3 is more than the 2 passages"):
        lmbridge.RAG(bm25, k=3)
    with pytest.raises(ValueError, match="search\\['k'\\]: k=5"):
        lmbridge.RAG(bm25, k=1, search={"k": [1, 5]})
    assert lmbridge.RAG(bm25, k=1).setting_options() == {}  # the default k grid stays within the corpus
    with pytest.raises(ValueError, match="can search"):
        lmbridge.RAG(bm25, k=1, search={"top_k": [1]})


def test_a_retriever_that_fails_or_finds_nothing_is_a_counted_failure() -> None:
    def flaky(query: str, k: int) -> list[str]:
        if "1" in query:
            raise ConnectionError("index offline")
        return [] if "2" in query else [DOCS["d0"]]

    rag = lmbridge.RAG(flaky, k=1, lm=ScriptedLM(lambda m: {"answer": "K0Z"}))
    rows = [lmbridge.Example(question=f"code of item {i}", answer="K0Z").with_inputs("question") for i in range(3)]
    result = lmbridge.Evaluate(devset=rows, metric=lmbridge.metrics.exact_match("answer"), num_threads=1,
                               display_progress=False)(rag)
    assert result.errors == 2 and result.score == pytest.approx(100 / 3)
    assert all("RetrievalError" in str(r.error) for r in result.results[1:])


def test_fusion_merges_the_rankings_of_several_retrievers() -> None:
    def first(query: str, k: int) -> list[str]:
        return ["a", "b", "c"][:k]

    def second(query: str, k: int) -> list[str]:
        return ["c", "b", "d"][:k]

    rag = lmbridge.RAG({"one": first, "two": second}, k=2, use="fusion", lm=ScriptedLM([]))
    assert [p.text for p in rag.passages("q")] == ["b", "a"]  # in both lists first, then the best single rank
    assert rag.setting_options()["retriever"] == ["fusion", "one", "two"]
    with pytest.raises(ValueError, match="'retriever' must be one of"):
        rag.apply_settings({"retriever": "three"})


def test_settings_are_saved_and_restored_and_checked_on_load(tmp_path: Path) -> None:
    rag = lmbridge.RAG({"one": second_best, "two": second_best}, k=2, search={"rewrite": [False, True]})
    rag.apply_settings({"k": 5, "retriever": "fusion", "rewrite": True})
    rag.save(tmp_path / "rag.json")
    saved = json.loads((tmp_path / "rag.json").read_text())
    assert saved["rag"] == {"self": {"k": 5, "retriever": "fusion", "rewrite": True}}
    fresh = lmbridge.RAG({"one": second_best, "two": second_best}, k=2, search={"rewrite": [False, True]})
    assert fresh.load(tmp_path / "rag.json").settings() == {"k": 5, "retriever": "fusion", "rewrite": True}
    single = lmbridge.RAG(second_best, k=2, search={"rewrite": [False, True]})
    with pytest.raises(lmbridge.StateError, match="'retriever' must be one of"):
        single.load(tmp_path / "rag.json")
    assert single.settings()["k"] == 2  # nothing applied from a file that does not fit


def test_a_program_saved_before_rag_settings_existed_still_loads(tmp_path: Path) -> None:
    rag = lmbridge.RAG(second_best, k=2)
    rag.save(tmp_path / "rag.json")
    saved = json.loads((tmp_path / "rag.json").read_text())
    del saved["rag"]  # as a file written by a program whose module saved no settings
    (tmp_path / "old.json").write_text(json.dumps(saved))
    assert lmbridge.RAG(second_best, k=3).load(tmp_path / "old.json").settings()["k"] == 3


def test_mipro_searches_k_with_the_prompt_saves_it_and_leaves_the_student_alone(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    student = lmbridge.RAG(second_best, k=1, search={"k": [1, 2]}, lm=ScriptedLM(reader))
    opt = lmbridge.MIPROv2(lmbridge.metrics.exact_match("answer"), auto=None, num_candidates=2,
                           max_bootstrapped_demos=0, max_labeled_demos=0, num_threads=1, formats=[],
                           search_labels=False, display_progress=False)
    compiled = opt.compile(student, trainset=code_rows(range(0, 3)), valset=code_rows(range(3, 6)) * 4,
                           num_trials=4, minibatch=False)
    assert isinstance(compiled, lmbridge.RAG)
    assert compiled.settings()["k"] == 2 and student.settings()["k"] == 1
    report = compiled.report or {}
    assert report["baseline_score"] == 0.0 and report["best_score"] == 100.0
    assert report["selection"]["winner_state"]["answer"]["settings"]["k"] == 2
    compiled.save(tmp_path / "compiled.json")
    restored = lmbridge.RAG(second_best, k=1, search={"k": [1, 2]}).load(tmp_path / "compiled.json")
    assert restored.settings()["k"] == 2


def test_the_proposer_offers_an_instruction_about_the_span_length() -> None:
    from lmbridge.optimizers._support.proposer import signature_templates

    first = signature_templates(QA)[0]
    assert "shortest phrase copied from the context" in first and "never a sentence" in first
    assert not any("copied" in t for t in signature_templates(lmbridge.make_signature("context, question -> answer")))


def test_mipro_scores_the_extractive_recipe_before_its_search() -> None:
    pytest.importorskip("optuna")
    student = lmbridge.RAG(second_best, k=2, search={"k": [1, 2]}, lm=ScriptedLM(reader))
    train = [lmbridge.Example(question=f"What is the code of item {i}", answer=f"K{i}Z",
                              context=[DOCS[f"d{i}"]]).with_inputs("question") for i in range(3)]
    opt = lmbridge.MIPROv2(lmbridge.metrics.exact_match("answer"), auto=None, num_candidates=3,
                           max_bootstrapped_demos=0, max_labeled_demos=2, num_threads=1, formats=[],
                           display_progress=False)
    compiled = opt.compile(student, trainset=train, valset=code_rows(range(3, 6)), num_trials=1, minibatch=False)
    fulls = [t["config"] for t in (compiled.report or {})["trials"] if t["kind"] == "full_evaluation"]
    recipe = [c for c in fulls if c.get("answer.instruction", "").startswith("Answer with the shortest phrase")
              and c.get("answer.demos") == 2 and c.get("answer.settings") == {"k": 1}]
    assert recipe, fulls
