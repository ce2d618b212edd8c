"""Zero-shot accuracy of each prompt format with the embedded model, on real classification data.

    .venv/bin/python benchmarks/format_accuracy.py               # 20 rows per dataset
    .venv/bin/python benchmarks/format_accuracy.py --n 40        # the slice of the saved sst2 numbers

The model is ``lmbridge.LM("local/smollm2")`` (SmolLM2-135M-Instruct, in-process, greedy decoding)
with its cache off. Each dataset is the first ``n`` rows of its test split in ../shared/datasets,
asked through the signature ``text -> label: Literal[<the dataset's labels>]`` with one written
instruction per dataset. The formats compared:

* ``ChatFormat()``, the default: ``Label: value`` lines, instructions in the user message;
* ``ChatFormat(instructions="system")``: the same, instructions in a system message;
* ``JSONFormat()``: one JSON object, with the JSON mode that llama.cpp enforces by grammar;
* ``FieldMarkerFormat`` (defined here, for contrast): DSPy's ChatAdapter layout, with
  ``[[ ## field ## ]]`` markers and a ``[[ ## completed ## ]]`` end marker.

Every format reads its answer with the same rules (bridge/values.py), and Predict re-asks once when
an answer does not parse. Reported per dataset and format: accuracy, how many first answers did not
parse (and were re-asked), how many still failed (a ParseError, scored 0), model calls and time.
Results are printed and saved to benchmarks/results/format_accuracy.txt.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import lmbridge  # noqa: E402 - after the path set-up above, so that the checkout is imported
from examples.data import labels_of, load_classification  # noqa: E402
from lmbridge.metrics import exact_match  # noqa: E402
from lmbridge.signatures._values import coerce, describe_type, render, render_input  # noqa: E402

INSTRUCTIONS = {
    "sst2": "Classify the sentiment of a sentence from a movie review as positive or negative.",
    "trec": ("Classify the kind of answer a question asks for: abbreviation (what an abbreviation "
             "stands for), description (a definition, reason or way), entity (a thing, such as an "
             "animal, color, food or product), human (a person or group), location (a place) or "
             "numeric (a number, date, count, distance, price or other amount)."),
}
_MARKER = re.compile(r"\[\[\s*##\s*(\w+)\s*##\s*\]\]")


class FieldMarkerFormat(lmbridge.PromptFormat):
    """For contrast: the layout of DSPy's ChatAdapter. A system message lists the fields and shows
    the structure; each field's value follows a ``[[ ## name ## ]]`` line; the answer ends with
    ``[[ ## completed ## ]]``. Parsing requires the markers of the output fields."""

    name = "field-markers"

    def _system(self, signature: type[lmbridge.Signature]) -> str:
        def listing(fields: Mapping[str, lmbridge.Field]) -> str:
            return "\n".join(
                f"{i}. `{n}`: {'; '.join(p for p in (f.desc, describe_type(f.annotation)) if p) or 'text'}"
                for i, (n, f) in enumerate(fields.items(), 1))

        layout = "\n\n".join([*(f"[[ ## {n} ## ]]\n{{{n}}}" for n in signature.fields()),
                              "[[ ## completed ## ]]"])
        return (f"Your input fields are:\n{listing(signature.input_fields)}\n"
                f"Your output fields are:\n{listing(signature.output_fields)}\n"
                "Every exchange follows this structure, with the values filled in:\n\n"
                f"{layout}\n\nFollowing this structure, your task is: {signature.instructions}")

    def _user(self, signature: type[lmbridge.Signature], values: Mapping[str, Any]) -> str:
        blocks = "\n\n".join(f"[[ ## {n} ## ]]\n{render_input(values[n])}" for n in signature.input_fields)
        outs = ", ".join(f"`[[ ## {n} ## ]]`" for n in signature.output_fields)
        return (f"{blocks}\n\nRespond with the output fields {outs}, in that order, then end with "
                "the marker `[[ ## completed ## ]]`.")

    def format(self, signature: type[lmbridge.Signature], demos: Sequence[Mapping[str, Any]],
               inputs: Mapping[str, Any]) -> list[lmbridge.Message]:
        messages: list[lmbridge.Message] = [{"role": "system", "content": self._system(signature)}]
        for d in demos:
            if all(n in d for n in signature.fields()):
                messages.append({"role": "user", "content": self._user(signature, d)})
                messages.append({"role": "assistant", "content": self.render_outputs(signature, d)})
        messages.append({"role": "user", "content": self._user(signature, inputs)})
        return messages

    def render_outputs(self, signature: type[lmbridge.Signature], values: Mapping[str, Any]) -> str:
        blocks = [f"[[ ## {n} ## ]]\n{render(values[n])}" for n in signature.output_fields if n in values]
        return "\n\n".join([*blocks, "[[ ## completed ## ]]"])

    def parse(self, signature: type[lmbridge.Signature], text: str) -> dict[str, Any]:
        sections: dict[str, str] = {}
        found = list(_MARKER.finditer(text))
        for i, m in enumerate(found):
            end = found[i + 1].start() if i + 1 < len(found) else len(text)
            sections.setdefault(m.group(1), text[m.end():end])
        values: dict[str, Any] = {}
        for n, f in signature.output_fields.items():
            if n not in sections:
                raise lmbridge.ParseError(f"the completion has no [[ ## {n} ## ]] marker",
                                        completion=text, field=n)
            values[n] = coerce(sections[n], f.annotation, n)
        return values


FORMATS: dict[str, lmbridge.PromptFormat] = {
    'ChatFormat()': lmbridge.ChatFormat(),
    'ChatFormat(instructions="system")': lmbridge.ChatFormat(instructions="system"),
    "JSONFormat()": lmbridge.JSONFormat(),
    "FieldMarkerFormat (DSPy-style)": FieldMarkerFormat(),
}


def signature_for(dataset: str) -> type[lmbridge.Signature]:
    options = ", ".join(repr(label) for label in labels_of(dataset))
    return lmbridge.make_signature(f"text -> label: Literal[{options}]", INSTRUCTIONS[dataset])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="test rows per dataset")
    parser.add_argument("--datasets", default="sst2,trec")
    parser.add_argument("--max-tokens", type=int, default=32, help="completion budget per call, every format")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "format_accuracy.txt")
    args = parser.parse_args()

    lm = lmbridge.LM("local/smollm2", cache=False)
    lines = [f"Zero-shot accuracy by prompt format: {lm.model}, greedy, max_tokens={args.max_tokens}, "
             f"first {args.n} test rows per dataset", time.strftime("%Y-%m-%d %H:%M"), ""]
    header = (f"{'dataset':<8}{'format':<36}{'accuracy':>9}{'re-asked':>10}{'failed':>8}{'calls':>7}"
              f"{'s/row':>7}")
    samples: list[str] = []
    legend = ["re-asked: first answers that did not parse (Predict re-asks once with the error shown);",
              "failed: answers that still did not parse (a ParseError, scored 0).", "",
              "Per dataset and format: the labels predicted, the first parsed completion and the first failure:"]

    def save(done: bool) -> str:
        text = "\n".join([*lines, *([] if done else ["(run in progress)", ""]), *legend, *samples])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        return text

    for dataset in args.datasets.split(","):
        devset = load_classification(dataset, "test", args.n)
        signature = signature_for(dataset)
        majority = Counter(e.label for e in devset).most_common(1)[0]
        lines += [f"{dataset}: {len(devset)} rows, labels {labels_of(dataset)}; "
                  f"majority class {majority[0]!r} = {100 * majority[1] / len(devset):.1f}%",
                  header, "-" * len(header)]
        for title, fmt in FORMATS.items():
            program = lmbridge.Predict(signature, lm=lm, format=fmt, max_tokens=args.max_tokens)
            result = lmbridge.Evaluate(devset=devset, metric=exact_match("label"), num_threads=1,
                                     display_progress=False)(program)
            failed = sum(1 for r in result.results if r.error is not None and "ParseError" in r.error)
            other = sum(1 for r in result.results if r.error is not None and "ParseError" not in r.error)
            row = (f"{dataset:<8}{title:<36}{result.score:>8.1f}%{result.usage.parse_retries:>10}{failed:>8}"
                   f"{result.usage.calls:>7}{result.elapsed / len(devset):>7.2f}")
            lines.append(row + (f"  ({other} other errors)" if other else ""))
            print(row, flush=True)
            predicted = Counter(str(r.prediction.label) for r in result.results if r.prediction is not None)
            samples.append(f"{dataset} / {title}: predicted {dict(predicted.most_common())}")
            first = next((r for r in result.results if r.prediction is not None), None)
            if first is not None:
                samples.append(f"{dataset} / {title}: parsed {first.prediction.completion[:120]!r}")
            failure = next((r.error for r in result.results if r.error is not None), None)
            if failure is not None:
                samples.append(f"{dataset} / {title}: failed {failure[:300]}")
            save(done=False)
        lines.append("")
    print("\n" + save(done=True))


if __name__ == "__main__":
    main()
