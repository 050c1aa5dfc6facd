"""The "Training" and "Evaluation" sections of a model card, written from a run folder and ``amt eval`` JSON.

The numbers in ``MODEL_CARD.md`` must be the ones the commands measured, so they are pasted by this module,
not by hand: the section between ``<!-- evaluation:start -->`` and ``<!-- evaluation:end -->`` of the card
is replaced (appended if the markers are absent); the rest of the card is left alone.

    python -m amt.training.model_card --card amt/checkpoints/default/MODEL_CARD.md --run runs/default \\
        bits.json harmony.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from amt.errors import AmtError
from amt.fileio import atomic_write_text

START, END = "<!-- evaluation:start -->", "<!-- evaluation:end -->"
BITS_COLUMNS = (
    ("bits_per_event", "bits/event", "{:.3f}"),
    ("loss_per_token", "loss/token", "{:.4f}"),
    ("perplexity_onset", "ppl onset", "{:.2f}"),
    ("perplexity_duration", "ppl duration", "{:.2f}"),
    ("perplexity_note", "ppl note", "{:.2f}"),
)
CONDITION_NAMES = {"plain": "plain (no controls)", "anticipate": "with anticipated controls"}


def _read_json(path: str | os.PathLike) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise AmtError(f"{path}: cannot read JSON ({error})") from None


def _number(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _latest_per_step(lines: Sequence[Mapping]) -> list[Mapping]:
    """One line per step, in step order. A run resumed from a checkpoint logs again the steps after it, so a
    later line for a step replaces an earlier one (the interrupted run's steps were not kept)."""
    by_step = {m["step"]: m for m in lines}
    return [by_step[step] for step in sorted(by_step)]


def training_markdown(run_dir: str | os.PathLike) -> str:
    """Steps, tokens, losses and throughput of a training run folder (metrics.jsonl, last checkpoint)."""
    run = Path(run_dir)
    try:
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    except (OSError, ValueError) as error:
        raise AmtError(f"{run}: cannot read metrics.jsonl ({error})") from None
    train = _latest_per_step([m for m in lines if "train/block_loss" in m or "train/loss" in m])
    valid = _latest_per_step([m for m in lines if "valid/loss" in m])
    if not train:
        raise AmtError(f"{run}/metrics.jsonl has no training steps")
    last = train[-1]
    rows = [("optimizer steps", f"{last['step']:,}")]
    states = sorted(run.glob("checkpoints/step-*/trainer_state.json"))
    if states:
        state = _read_json(states[-1])
        per_step = state["tokens"] / state["step"]
        rows.append(("training tokens", f"{round(per_step * last['step']):,}"))
        # Throughput is logged per interval: the time of each interval is its tokens over its rate.
        seconds, previous = 0.0, 0
        for m in train:
            seconds += (m["step"] - previous) * per_step / m["train/tokens_per_s"]
            previous = m["step"]
        rows.append(("compute time (logged throughput; startup, checkpoints and validation excluded)",
                     f"{seconds / 3600:.2f} h"))
    loss = "train/loss" if "train/loss" in last else "train/block_loss"
    rows.append((f"last training loss ({loss})", f"{last[loss]:.4f}"))
    if valid:
        # A run on the block loss picks its best model by the validation block loss (train.py).
        block = [m for m in valid if "valid/block_loss" in m]
        valid, prefix = (block, "valid/block_") if block else (valid, "valid/")
        kind = "block loss (grammar softmax)" if block else "loss"
        best = min(valid, key=lambda m: m[f"{prefix}loss"])
        rows.append((f"best validation {kind} (step)", f"{best[f'{prefix}loss']:.4f} ({best['step']:,})"))
        rows.append(("validation bits/event at that step", f"{best[f'{prefix}bits_per_event']:.3f}"))
    return "\n".join(["| | |", "|---|---:|", *(f"| {name} | {value} |" for name, value in rows)])


def bits_markdown(report: Mapping) -> str:
    """The model (and baseline) rows of an ``amt eval --corpus`` report as a Markdown table."""
    baseline = report.get("baseline")
    header = ["condition", "system", *(title for _, title, _ in BITS_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * len(BITS_COLUMNS)]
    for condition, metrics in report["conditions"].items():
        systems = [("model" + (" (grammar softmax)" if report.get("softmax") == "grammar" else ""), metrics)]
        if baseline:
            systems.append((f"{baseline['order']}-gram baseline", baseline["conditions"][condition]))
        for system, values in systems:
            cells = [CONDITION_NAMES.get(condition, condition), system,
                     *(_number(values[key], fmt) for key, _, fmt in BITS_COLUMNS)]
            lines.append("| " + " | ".join(cells) + " |")
    if baseline:
        below = [c for c, m in report["conditions"].items()
                 if m["bits_per_event"] < baseline["conditions"][c]["bits_per_event"]]
        lines.append("")
        lines.append(f"Model below the {baseline['order']}-gram in bits/event: "
                     f"{len(below)} of {len(report['conditions'])} conditions"
                     + (f" ({', '.join(CONDITION_NAMES.get(c, c) for c in below)})" if below else "") + ".")
    note = (f"{report['sequences']} sequences per condition from the {report['split']} split of "
            f"`{report['corpus']}` (seed {report['seed']}), the same for every system")
    if baseline:
        note += (f"; the {baseline['order']}-gram counted {baseline['fit_sequences']:,} sequences of the "
                 f"{baseline['fit_split']} split")
    return "\n".join(lines) + f"\n\n{note}."


def evaluation_section(reports: Sequence[Mapping], run_dir: str | os.PathLike | None = None) -> str:
    """The card's section: training summary (if ``run_dir``), bits/event and harmonisation tables."""
    from amt.training.harmony import format_harmony_table

    parts = [START, "## Evaluation", ""]
    if run_dir is not None:
        parts += ["### Training run", "", training_markdown(run_dir), ""]
    for report in reports:
        if "conditions" in report:
            parts += ["### Bits per event on held-out music", "", bits_markdown(report), ""]
        if "harmonization" in report:
            h = report["harmonization"]
            parts += ["### Harmonising held-out Bach chorales", "",
                      f"Alto, tenor and bass written under the soprano of {h['pieces']} "
                      f"{h.get('split', 'test')}-split chorales ({h['samples_per_chorale']} sample(s) each, "
                      f"seed {report['seed']}), against Bach's "
                      f"own voices and {h['random_samples']} random harmonisations. Sampling: "
                      f"{_sampling_text(h.get('sampling', {}))}.", "",
                      format_harmony_table(_nan(h)), "",
                      "Model closer to Bach than random on every scored row: "
                      f"{'yes' if h.get('all_closer') else 'no'}.", ""]
    if len(parts) == 3:
        raise AmtError("nothing to write: no training run and no evaluation results")
    return "\n".join([*parts, END])


def _sampling_text(sampling: Mapping) -> str:
    """``harmony.SAMPLING``-style settings as ``key=value`` code spans (JSON values: true, null)."""
    return ", ".join(f"`{key}={json.dumps(value)}`" for key, value in sampling.items()) or "the defaults"


def _nan(value):
    """JSON null (a metric with nothing to count) back to NaN, which the harmony table prints as nan."""
    if isinstance(value, dict):
        return {k: _nan(v) for k, v in value.items()}
    return float("nan") if value is None else value


def update_card(card: str | os.PathLike, section: str) -> None:
    """Replace the evaluation section of ``card`` (or append it; a missing card is created)."""
    path = Path(card)
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = f"{text.rstrip()}\n\n{section}\n" if text.strip() else f"{section}\n"
    atomic_write_text(path, text)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the evaluation section of a model card."""
    parser = argparse.ArgumentParser(prog="python -m amt.training.model_card",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("reports", nargs="*", help="JSON files written by `amt eval --json`")
    parser.add_argument("--run", help="training run folder (metrics.jsonl, checkpoints/)")
    parser.add_argument("--card", required=True, help="model card to update (MODEL_CARD.md)")
    args = parser.parse_args(argv)
    try:
        update_card(args.card, evaluation_section([_read_json(p) for p in args.reports], args.run))
    except AmtError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote the evaluation section of {args.card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
