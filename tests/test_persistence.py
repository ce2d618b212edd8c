"""save/load: plain JSON state, versioned, without secrets, validated before anything changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest

import lmbridge
from lmbridge.programs._persistence import FORMAT_VERSION, library_version
from lmbridge.testing import ScriptedLM

SECRET = "sk-secret-do-not-save"


class Classify(lmbridge.Signature):
    """Label the text."""

    text: str = lmbridge.InputField(desc="the text")
    label: Literal["a", "b"] = lmbridge.OutputField()


class Pipeline(lmbridge.Module):
    def __init__(self) -> None:
        self.classify = lmbridge.Predict(Classify)
        self.explain = lmbridge.ChainOfThought("text, label -> explanation")

    def forward(self, text: str) -> lmbridge.Prediction:
        label = self.classify(text=text).label
        return self.explain(text=text, label=label)


def compiled() -> Pipeline:
    program = Pipeline()
    program.classify.instructions = "Pick a or b carefully."
    program.classify.signature = program.classify.signature.with_updated_field("label", desc="the class")
    program.classify.demos = [lmbridge.Example(text="first", label="a"),
                              lmbridge.Example(text="second", label="b")]
    program.classify.format = lmbridge.JSONFormat()
    program.explain.predict.demos = [lmbridge.Example(text="t", label="a", reasoning="r", explanation="e")]
    program.explain.predict.format = lmbridge.ChatFormat(demos="inline", instructions="system")
    program.report = {"optimizer": "LabeledFewShot", "score": 87.5, "trials": [1, 2]}
    return program


def snapshot(program: lmbridge.Module) -> str:
    return json.dumps(program.dump_state()["predictors"], sort_keys=True) + json.dumps(program.report)


def test_round_trip(tmp_path: Path) -> None:
    original = compiled()
    path = tmp_path / "sub" / "program.json"
    original.save(path)
    loaded = Pipeline().load(path)
    assert isinstance(loaded, Pipeline)
    assert loaded.classify.instructions == "Pick a or b carefully."
    assert loaded.classify.signature.output_fields["label"].desc == "the class"
    assert loaded.classify.signature.input_fields["text"].desc == "the text"
    assert loaded.classify.demos == original.classify.demos
    assert isinstance(loaded.classify.demos[0], lmbridge.Example)
    assert loaded.classify.format == lmbridge.JSONFormat()
    assert loaded.explain.predict.demos == original.explain.predict.demos
    assert loaded.explain.predict.format == lmbridge.ChatFormat(demos="inline", instructions="system")
    assert loaded.report == original.report
    assert snapshot(loaded) == snapshot(original)


def test_loaded_program_runs_with_the_loaded_state(tmp_path: Path) -> None:
    compiled().save(tmp_path / "p.json")
    program = Pipeline().load(tmp_path / "p.json")
    lm = ScriptedLM([{"label": "b"}, {"reasoning": "because", "explanation": "it is b"}])
    with lmbridge.context(lm=lm):
        assert program(text="x").explanation == "it is b"
    first_request = "\n".join(m["content"] for m in lm.calls[0])
    assert "Pick a or b carefully." in first_request
    assert '"label": "a"' in first_request  # the demos, in the loaded JSON format


def test_file_has_versions_and_is_plain_json(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    compiled().save(path)
    data = json.loads(path.read_text())
    assert data["format_version"] == FORMAT_VERSION
    assert data["lmbridge_version"] == library_version()
    assert data["format"] == "lmbridge.program"
    assert set(data["predictors"]) == {"classify", "explain.predict"}
    assert data["predictors"]["classify"]["fields"]["label"]["type"] == "Literal['a', 'b']"


def test_no_credentials_or_base_urls_in_the_file(tmp_path: Path) -> None:
    program = compiled()
    lm = lmbridge.LM("openai/gpt-4o-mini", api_key=SECRET, api_base="http://10.1.2.3:8000/v1", cache=False)
    program.classify.lm = lm
    program.explain.predict.lm = lm
    program.save(tmp_path / "p.json")
    text = (tmp_path / "p.json").read_text()
    assert SECRET not in text
    assert "10.1.2.3" not in text
    assert "gpt-4o-mini" not in text
    loaded = Pipeline().load(tmp_path / "p.json")
    assert loaded.classify.lm is None  # loading never sets where traffic goes


def _saved(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "good.json"
    compiled().save(path)
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _broken_states(tmp_path: Path) -> list[tuple[str, Any]]:
    good = _saved(tmp_path)
    cases: list[tuple[str, Any]] = []

    def variant(name: str, change: Any) -> None:
        state = json.loads(json.dumps(good))
        change(state)
        cases.append((name, state))

    variant("missing predictor", lambda s: s["predictors"].pop("explain.predict"))
    variant("extra predictor", lambda s: s["predictors"].update(extra=s["predictors"]["classify"]))
    variant("wrong field names",
            lambda s: s["predictors"]["classify"].update(fields={"txt": {"kind": "input"},
                                                                 "label": {"kind": "output"}}))
    variant("input/output swapped",
            lambda s: s["predictors"]["classify"]["fields"]["text"].update(kind="output"))
    variant("wrong field type", lambda s: s["predictors"]["classify"]["fields"]["label"].update(type="int"))
    variant("newer format version", lambda s: s.update(format_version=FORMAT_VERSION + 1))
    variant("version not a number", lambda s: s.update(format_version="1"))
    variant("not our format", lambda s: s.update(format="something.else"))
    variant("demos not a list", lambda s: s["predictors"]["classify"].update(demos="x"))
    variant("demo not an object", lambda s: s["predictors"]["classify"].update(demos=[1]))
    variant("instructions not text", lambda s: s["predictors"]["classify"].update(instructions=3))
    variant("unknown prompt format", lambda s: s["predictors"]["classify"].update(format={"name": "pickle"}))
    variant("bad prompt format option",
            lambda s: s["predictors"]["classify"].update(format={"name": "chat", "demos": "sideways"}))
    variant("bad json format option",
            lambda s: s["predictors"]["classify"].update(format={"name": "json", "demos": "sideways"}))
    variant("unknown format option",
            lambda s: s["predictors"]["classify"].update(format={"name": "chat", "exec": "rm -rf /"}))
    variant("predictors not an object", lambda s: s.update(predictors=[]))
    variant("format not an object", lambda s: s["predictors"]["classify"].update(format="json"))
    variant("format a list", lambda s: s["predictors"]["classify"].update(format=["json"]))
    variant("version a bool", lambda s: s.update(format_version=True))
    variant("version negative", lambda s: s.update(format_version=-1))
    variant("desc not text", lambda s: s["predictors"]["classify"]["fields"]["label"].update(desc=["x"]))
    variant("prefix not text", lambda s: s["predictors"]["classify"]["fields"]["label"].update(prefix={}))
    variant("field entry not an object", lambda s: s["predictors"]["classify"]["fields"].update(label="output"))
    variant("second predictor broken", lambda s: s["predictors"]["explain.predict"].update(format=1))
    cases.append(("a list", [good]))
    cases.append(("a string", "lmbridge.program"))
    return cases


def test_every_misfit_raises_state_error_and_changes_nothing(tmp_path: Path) -> None:
    for name, state in _broken_states(tmp_path):
        program = compiled()
        program.classify.instructions = "Current instructions."
        before = snapshot(program)
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(state))
        with pytest.raises(lmbridge.StateError):
            program.load(path)
        assert snapshot(program) == before, f"{name}: the program changed"


@pytest.mark.parametrize("content", ["not json {", "", "\x00\x01binary", "[1, 2", "null", "42",
                                     "[" * 100_000 + "]" * 100_000, '{"format": ' + "[" * 50_000 + "]" * 50_000 + "}",
                                     "9" * 10_000])
def test_not_json_or_not_an_object_raises_state_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    program = compiled()
    before = snapshot(program)
    with pytest.raises(lmbridge.StateError):
        program.load(path)
    assert snapshot(program) == before


def test_missing_file_raises_state_error(tmp_path: Path) -> None:
    with pytest.raises(lmbridge.StateError):
        compiled().load(tmp_path / "nope.json")


def test_loading_never_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    state = _saved(tmp_path)
    state["predictors"]["classify"]["instructions"] = payload
    state["predictors"]["classify"]["demos"] = [{"text": payload, "label": "a", "__class__": "os.system",
                                                 "__reduce__": payload}]
    state["predictors"]["classify"]["fields"]["text"]["desc"] = "{{ " + payload + " }}"
    state["report"] = {"!!python/object": payload, "eval": payload}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(state))
    program = Pipeline().load(path)
    assert not marker.exists()
    assert program.classify.instructions == payload  # kept as data
    assert program.classify.demos[0]["__reduce__"] == payload
    assert program.report == {"!!python/object": payload, "eval": payload}


def test_older_format_version_loads(tmp_path: Path) -> None:
    state = _saved(tmp_path)
    state["format_version"] = 0
    path = tmp_path / "p.json"
    path.write_text(json.dumps(state))
    assert Pipeline().load(path).classify.instructions == "Pick a or b carefully."


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    compiled().save(tmp_path / "p.json")
    compiled().save(tmp_path / "p.json")
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]


def test_single_predict_saves_and_loads(tmp_path: Path) -> None:
    p = lmbridge.Predict(Classify, demos=[{"text": "t", "label": "a"}])
    p.save(tmp_path / "p.json")
    q = lmbridge.Predict(Classify).load(tmp_path / "p.json")
    assert isinstance(q, lmbridge.Predict)
    assert q.demos == p.demos


def test_a_file_that_is_not_utf8_raises_state_error(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(b'{"format": "\xff\xfe"}')
    with pytest.raises(lmbridge.StateError, match="not UTF-8"):
        compiled().load(path)


def test_a_deeply_nested_file_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(lmbridge.StateError, match="too deeply"):
        compiled().load(path)


def test_a_failure_while_applying_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a failure after validation (here: the second predictor's format cannot be built) leaves
    the first predictor as it was: new values are built for every predictor before any is assigned."""
    import lmbridge.programs._persistence

    path = tmp_path / "p.json"
    compiled().save(path)
    program = Pipeline()
    before = snapshot(program)
    real = lmbridge.programs._persistence.format_from_state
    built: list[object] = []

    def second_fails(state: Any) -> Any:
        built.append(state)
        if len(built) > 3:  # both predictors pass validation and the first is built; the second fails
            raise ValueError("cannot build")
        return real(state)

    monkeypatch.setattr(lmbridge.programs._persistence, "format_from_state", second_fails)
    with pytest.raises(lmbridge.StateError):
        program.load(path)
    assert snapshot(program) == before


# -- the loader's one bound (issue 24) -----------------------------------------------------------------

def _nested(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


def _single_state() -> dict[str, Any]:
    return lmbridge.Predict("question -> answer").dump_state()


def test_a_prior_holding_a_400_digit_number_is_a_state_error(tmp_path: Path) -> None:
    state = _single_state()
    state["predictors"]["self"]["format"] = {
        "name": "chat", "scoring": "calibrated",
        "prior": {"probabilities": {"yes": int("9" * 400), "no": 0.5}, "inputs": 3, "prompt": "p"}}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(state))
    for load in (lambda p: p.load(path), lambda p: p.load_state(state)):
        program = lmbridge.Predict("question -> answer")
        with pytest.raises(lmbridge.StateError, match="integer too large"):
            load(program)
        assert program.format is None


@pytest.mark.parametrize("levels", [496, 990])
def test_a_demo_nested_too_deeply_is_refused_at_load_not_at_run_or_save(tmp_path: Path, levels: int) -> None:
    state = _single_state()
    state["predictors"]["self"]["demos"] = [{"question": "NESTED", "answer": "a"}]
    path = tmp_path / "p.json"  # written by hand: json.dumps itself cannot nest 990 levels
    path.write_text(json.dumps(state).replace('"NESTED"', "[" * levels + '"x"' + "]" * levels))
    state["predictors"]["self"]["demos"] = [{"question": _nested(levels), "answer": "a"}]
    for load in (lambda p: p.load(path), lambda p: p.load_state(state)):
        program = lmbridge.Predict("question -> answer")
        with pytest.raises(lmbridge.StateError, match="nest"):  # json itself may refuse the file first
            load(program)
        assert program.demos == []


def test_a_state_that_contains_itself_is_a_state_error() -> None:
    state = _single_state()
    loop: list[Any] = []
    loop.append(loop)
    state["predictors"]["self"]["demos"] = [{"question": loop, "answer": "a"}]
    with pytest.raises(lmbridge.StateError, match="nests deeper than"):
        lmbridge.Predict("question -> answer").load_state(state)


def test_a_demo_nested_within_the_bound_loads_runs_and_saves_again(tmp_path: Path) -> None:
    state = _single_state()
    state["predictors"]["self"]["demos"] = [{"question": _nested(20), "answer": "a"}]
    program = lmbridge.Predict("question -> answer", lm=ScriptedLM([{"answer": "b"}]))
    program.load_state(state)
    assert program(question="q").answer == "b"
    program.save(tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text())["predictors"]["self"]["demos"] == \
        state["predictors"]["self"]["demos"]


@pytest.mark.parametrize("where", ["demo", "desc", "instructions"])
def test_a_lone_surrogate_is_refused_at_load_so_save_never_fails_later(tmp_path: Path, where: str) -> None:
    state = _single_state()
    entry = state["predictors"]["self"]
    if where == "demo":
        entry["demos"] = [{"question": "a\ud800b", "answer": "a"}]
    elif where == "desc":
        entry["fields"]["question"]["desc"] = "the \udc00 question"
    else:
        entry["instructions"] = "Answer \ud83d."
    path = tmp_path / "p.json"
    path.write_text(json.dumps(state))  # JSON escapes the surrogate as \ud800: a valid file, invalid text
    for load in (lambda p: p.load(path), lambda p: p.load_state(state)):
        program = lmbridge.Predict("question -> answer")
        before = program.dump_state()
        with pytest.raises(lmbridge.StateError, match="not valid Unicode"):
            load(program)
        assert program.dump_state() == before
