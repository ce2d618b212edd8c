"""Does local LoRA training teach the embedded model a task? ``LocalLoRA`` alone, no optimizer.

Fine-tunes an embedded model on SST-2 train rows written as ``Predict("text -> label")`` prompts
with their gold labels (the prompt exactly as the predictor sends it, the answer as the format
writes it), then scores that predictor on dev rows with the base model and with the adapter. Prints
accuracy before and after, the steps, the training wall time and the adapter's size.

    LMBRIDGE_DATASETS=../shared/datasets LMBRIDGE_LOCAL_THREADS=1 python benchmarks/finetune_local.py \\
        --model smollm2 --train 200 --dev 100 --epochs 3 --batch-size 8

Needs ``pip install 'lmbridge[local,finetune]'``. A repeated run with the same settings reuses the
trained adapter from the weights store (``LMBRIDGE_CACHE_DIR``), so only the scoring runs again.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import lmbridge
from lmbridge.datasets import load_classification
from lmbridge.finetune import LocalLoRA, TrainingProgress
from lmbridge.programs import DEFAULT_FORMAT


def _accuracy(predict: lmbridge.Predict, rows: list[lmbridge.Example]) -> tuple[float, int]:
    """Accuracy on ``rows`` and how many answers failed (each counted wrong)."""
    right = failed = 0
    for row in rows:
        try:
            right += predict(text=row.text).label == row.label
        except lmbridge.BridgeError:
            failed += 1
    return right / len(rows), failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--dev", type=int, default=100)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    folder = Path(os.environ.get("LMBRIDGE_DATASETS", "../shared/datasets")) / "sst2"
    train, dev = load_classification(folder, "train", args.train), load_classification(folder, "dev", args.dev)
    signature = lmbridge.make_signature("text -> label: Literal['negative', 'positive']")
    base = lmbridge.LM(f"local/{args.model}", max_tokens=16)
    student = lmbridge.Predict(signature, lm=base)
    fmt = DEFAULT_FORMAT
    examples = [[*student.messages(text=r.text),
                 {"role": "assistant", "content": fmt.render_outputs(signature, {"label": r.label})}] for r in train]

    trainer = LocalLoRA(steps=args.steps, epochs=args.epochs, batch_size=args.batch_size,
                        learning_rate=args.learning_rate)
    started = time.monotonic()

    def show(progress: TrainingProgress) -> None:
        eta = f", about {progress.seconds_left:.0f} s to go" if progress.seconds_left is not None else ""
        loss = f" loss {progress.loss:.3f}" if progress.loss is not None else ""
        print(f"  [{time.monotonic() - started:6.1f} s] {progress.status} {progress.step}/{progress.total}{loss}{eta}",
              flush=True)

    tuned = trainer.train(base, examples, seed=args.seed, on_progress=show)
    seconds = time.monotonic() - started
    assert isinstance(tuned, lmbridge.LM) and tuned.adapter is not None
    before, failed_before = _accuracy(student, dev)
    after, failed_after = _accuracy(lmbridge.Predict(signature, lm=tuned), dev)
    print(f"model {args.model}: {len(train)} train rows, {trainer.total_steps(len(train))} steps "
          f"(batch {args.batch_size}, lr {args.learning_rate}, seed {args.seed}), training {seconds:.0f} s wall, "
          f"adapter {tuned.adapter.stat().st_size / 2**20:.1f} MB")
    print(f"dev accuracy on {len(dev)} rows: base {before:.2f} ({failed_before} failed), "
          f"fine-tuned {after:.2f} ({failed_after} failed)")


if __name__ == "__main__":
    main()
