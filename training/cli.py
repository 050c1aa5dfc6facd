"""Subcommands of the training package: ``amt train`` and ``amt eval``. Handlers import torch lazily."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from amt.device import AUTO, DEVICE_HELP
from amt.fileio import atomic_write_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``eval`` to the ``amt`` parser."""
    p = subparsers.add_parser(
        "train", help="train a model on a prepared corpus",
        description="Train a model on a corpus folder made by `amt prepare`, with the AMT infilling "
        "objectives. "
        "Under torchrun, trains data-parallel on every process of the group.",
    )
    p.add_argument("--config", required=True,
                   help="training config YAML, or the name of a shipped one (tiny, default, amt-small, "
                   "amt-medium, amt-large, finetune)")
    p.add_argument("--corpus", help="corpus folder (overrides data.corpus of the config and its stages)")
    p.add_argument("--out", help="run folder for checkpoints and logs (overrides train.out; first stage)")
    p.add_argument("--init", metavar="PATH_OR_HUB_ID", help="start from this model instead of a random one")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in the run folder (of each stage)")
    p.add_argument("--steps", type=int, help="total optimizer steps (overrides train.steps; first stage)")
    p.add_argument("--then", metavar="CONFIG",
                   help="config to train next from this run's best model (overrides train.then; none: stop "
                   "after this config)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (overrides train.device; default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train, batch=True)  # every core by default (amt.cli.default_threads)

    p = subparsers.add_parser(
        "eval", help="evaluate a model on a corpus split and on chorale harmonisation",
        description="With --corpus: loss per token, bits per event and perplexities of onsets, durations and "
        "notes, for plain sequences and sequences with anticipated controls (full-vocabulary softmax, fixed "
        "seeds), optionally beside a count-based n-gram baseline scored on the same sequences. "
        "With --harmonize: the model writes alto, tenor and bass under the soprano of held-out Bach "
        "chorales, scored against Bach's voices and a random baseline.",
    )
    p.add_argument("model", help="model folder or Hugging Face Hub id")
    p.add_argument("--corpus", help="corpus folder made by `amt prepare`: report bits per event on --split")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"),
                   help="split evaluated: the corpus's pieces and the --harmonize chorales (default test; "
                   "tune sampling on valid)")
    p.add_argument("--sequences", type=int, default=128, help="sequences per condition (default 128)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the evaluation sequences and of the harmonisation samples (default 0)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default=AUTO, help=DEVICE_HELP)
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="auto: bf16 autocast on CUDA, float32 on CPU")
    p.add_argument("--json", metavar="OUT", help="also write the results to this JSON file")
    p.add_argument("--grammar", action="store_true",
                   help="score the model's softmax over the tokens the grammar allows at each position (what "
                   "the sampler draws from, and what the n-gram defines) instead of the full vocabulary")
    group = p.add_argument_group("baseline (with --corpus)")
    group.add_argument("--baseline", choices=("ngram",),
                       help="also score a count-based n-gram model fitted on the corpus's train split")
    group.add_argument("--ngram-order", type=int, default=4, help="n-gram order (default 4)")
    group.add_argument("--ngram-sequences", type=int, default=8000,
                       help="training sequences the n-gram counts (default 8000: ~1 min, ~3 GB)")
    group = p.add_argument_group("harmonisation")
    group.add_argument("--harmonize", metavar="MIDI_DIR",
                       help="folder made by `python -m amt.training.music21_corpus`: harmonise the soprano "
                       "of its chorales in --split")
    group.add_argument("--limit", type=int, default=12,
                       help="chorales to harmonise, in file-name order (default 12; 0: all)")
    group.add_argument("--samples", type=int, default=2, help="harmonisations per chorale (default 2)")
    group.add_argument("--midi-out", metavar="DIR", help="also write each harmonisation to a MIDI file here")
    group.add_argument("--sampling", nargs="+", default=[], metavar="KEY=VALUE",
                       help="change how the voices are sampled (defaults: amt.training.harmony.SAMPLING), "
                       "e.g. top_p=0.9 or legato=false no_parallels=false; values are JSON (true, null, 0.8)")
    group = p.add_argument_group("accompaniment")
    group.add_argument("--accompany", metavar="MIDI_DIR",
                       help="keep the melody of each MIDI file here (DIR/melody.json {file: program}, else "
                       "the highest busy part) and write the other parts; scored with the original, a rule "
                       "baseline and random notes (amt.training.accompaniment); --limit pieces, --samples "
                       "each")
    group.add_argument("--seconds", type=float, default=20.0, help="span of each piece scored (default 20)")
    p.set_defaults(func=run_eval)


def _finite(value):
    """``value`` with NaN numbers (metrics with nothing to count) replaced by None: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return None if isinstance(value, float) and value != value else value


def _check_corpus(path: str) -> None:
    from amt.errors import CorpusError

    if not Path(path).is_dir():
        raise CorpusError(f"{path}: corpus folder not found "
                          f"(make one with `amt prepare MIDI_FOLDER --out {path}`)")


def _stages(first: str, then: str | None) -> list:
    """The config ``first`` and the ones its ``train.then`` chain names (``then`` overrides the first's:
    "none" ends the chain there), all read before training starts."""
    from amt.errors import ConfigError
    from amt.training.config import load_config

    names, configs = [first], [load_config(first)]
    if then is not None:
        configs[0].train.then = None if then.lower() == "none" else then
    while configs[-1].train.then:
        name = configs[-1].train.then
        if name in names:
            raise ConfigError(f"train.then of {names[-1]} leads back to {name}: the stages would never end")
        names.append(name)
        configs.append(load_config(name))
    return configs


def run_train(args: argparse.Namespace) -> int:
    """``amt train``: the config, then each stage its ``train.then`` names, from the previous best model."""
    from amt.errors import ConfigError
    from amt.training.train import train

    stages = _stages(args.config, args.then)
    if args.steps is not None:
        if args.steps < 1:
            raise ConfigError("--steps must be >= 1")
        stages[0].train.steps = args.steps
    for config in stages:
        if args.corpus:
            config.data.corpus = args.corpus
        if args.device:
            config.train.device = args.device
        _check_corpus(config.data.corpus)
    init, out = args.init, args.out
    for config in stages:
        summary = train(config, init=init, resume=args.resume, out=out, progress=not args.no_progress)
        if int(os.environ.get("RANK", "0")) == 0:
            best = summary["best_valid_loss"]
            print(f"trained to step {summary['step']}: last training loss {summary['train_loss']:.4f}, "
                  f"best validation loss {'-' if best is None else f'{best:.4f}'}; "
                  f"best model: {summary['out']}/best")
        init, out = f"{summary['out']}/best", None
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """``amt eval``."""
    from amt.errors import ConfigError
    from amt.models import load_model
    from amt.training.train import pick_device

    if not args.corpus and not args.harmonize and not args.accompany:
        raise ConfigError("give --corpus (bits per event on a corpus split), --harmonize MIDI_DIR and/or "
                          "--accompany MIDI_DIR")
    if args.baseline and not args.corpus:
        raise ConfigError("--baseline needs --corpus")
    for name in ("sequences", "batch_size", "ngram_order", "ngram_sequences", "samples"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
    if args.limit < 0:
        raise ConfigError("--limit must be >= 0")
    args.sampling = _sampling_overrides(args.sampling)
    # Inputs are checked before the model loads, so that a typo fails at once.
    corpus = _eval_corpus(args) if args.corpus else None
    chorales = _held_out_chorales(args.harmonize, args.limit, args.split) if args.harmonize else None
    if args.accompany:
        from amt.training.accompaniment import load_pieces

        pieces = load_pieces(args.accompany, args.limit)
    device = pick_device(args.device)
    model = load_model(args.model, device=device)
    model.eval()
    report: dict = {"model": args.model, "seed": args.seed, "precision": args.precision}
    if corpus is not None:
        report.update(_bits_per_event(args, model, device, *corpus))
    if chorales is not None:
        report["harmonization"] = _harmonization(args, model, chorales)
    if args.accompany:
        report["accompaniment"] = _accompaniment(args, model, pieces)
    if args.json:
        target = Path(args.json)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, json.dumps(_finite(report), indent=2) + "\n")
    return 0


def _eval_corpus(args: argparse.Namespace):
    """(corpus, pieces of --split) for bits per event."""
    from amt.errors import CorpusError
    from amt.tokenization.corpus import Corpus

    _check_corpus(args.corpus)
    corpus = Corpus(args.corpus)
    pieces = corpus.split(args.split)
    if len(pieces) == 0:
        raise CorpusError(f"{args.corpus}: split {args.split!r} has no pieces")
    if args.baseline and len(corpus.split("train")) == 0:
        raise CorpusError(f"{args.corpus}: the n-gram baseline needs a train split, and it has no pieces")
    return corpus, pieces


def _bits_per_event(args: argparse.Namespace, model, device, corpus, pieces) -> dict:
    """Score the model (and the baseline) on the same sequences; print the table; the JSON entries."""
    import time

    from amt.training.evaluate import evaluate, format_table, model_scorer
    from amt.training.train import autocast_dtype

    def say(name: str) -> None:
        print(f"evaluating {name} ...", file=sys.stderr)

    scorer = model_scorer(model, autocast_dtype=autocast_dtype(args.precision, device), grammar=args.grammar)
    system = "model (grammar)" if args.grammar else "model"
    results = evaluate(scorer, corpus, pieces, sequences=args.sequences, seed=args.seed,
                       batch_size=args.batch_size, progress=lambda name: say(f"{name} ({system})"))
    entries = {"corpus": args.corpus, "split": args.split, "sequences": args.sequences,
               "softmax": "grammar" if args.grammar else "full", "conditions": results}
    title = (f"{args.model} on {args.corpus} ({args.split}, {len(pieces)} pieces, seed {args.seed}, "
             f"{entries['softmax']} softmax)")
    if not args.baseline:
        print(title)
        print(format_table(results))
        return entries
    from amt.training.ngram import fit_ngram

    fit_seed = 1  # fit_ngram's default: training sequences never coincide with evaluation's (seed 0)
    train = corpus.split("train")
    print(f"fitting the {args.ngram_order}-gram on {args.ngram_sequences} train sequences ...",
          file=sys.stderr)
    started = time.perf_counter()
    ngram = fit_ngram(corpus, train, sequences=args.ngram_sequences, order=args.ngram_order, seed=fit_seed)
    fit_seconds = time.perf_counter() - started
    name = f"{args.ngram_order}-gram"
    baseline = evaluate(ngram.scorer(), corpus, pieces, sequences=args.sequences, seed=args.seed,
                        batch_size=args.batch_size, progress=lambda condition: say(f"{condition} ({name})"))
    entries["baseline"] = {"name": "ngram", "order": args.ngram_order, "fit_split": "train",
                           "fit_pieces": len(train), "fit_sequences": args.ngram_sequences,
                           "fit_seed": fit_seed, "fit_seconds": round(fit_seconds, 1), "conditions": baseline}
    rows = {}
    for condition in results:
        rows[f"{condition}: {system}"] = results[condition]
        rows[f"{condition}: {name}"] = baseline[condition]
    print(f"{title}; {name} baseline fitted on {args.ngram_sequences} sequences of the "
          f"train split ({len(train)} pieces) in {fit_seconds:.0f} s")
    print(format_table(rows))
    return entries


def _held_out_chorales(midi_dir: str, limit: int, split: str) -> list:
    """The first ``limit`` (0: all) chorales in ``split`` of a music21 conversion with all four voices."""
    from amt.errors import CorpusError
    from amt.tokenization.midi import read_midi
    from amt.training.harmony import VOICE_PROGRAMS
    from amt.training.music21_corpus import split_files

    folder = Path(midi_dir)
    if not folder.is_dir():
        raise CorpusError(f"{midi_dir}: folder not found (make one with "
                          f"`python -m amt.training.music21_corpus --out {midi_dir}`)")
    if not (folder / "manifest.json").is_file():
        raise CorpusError(f"{midi_dir}: no manifest.json: not a folder made by "
                          "`python -m amt.training.music21_corpus`")
    files = sorted(split_files(folder, split))
    if not files:
        raise CorpusError(f"{midi_dir}: its {split} split has no Bach chorales (bach_chorales/)")
    chorales, skipped = [], []
    for path in files:
        midi = read_midi(path)
        # A chorale without one of the four voices (an instrumental part instead) cannot be scored.
        if set(VOICE_PROGRAMS.values()) <= set(midi.instruments()):
            chorales.append(midi)
        else:
            skipped.append(path.name)
        if len(chorales) == limit:
            break
    if not chorales:
        raise CorpusError(f"{midi_dir}: none of its {len(files)} {split} chorales has all four voices "
                          f"(programs {sorted(VOICE_PROGRAMS.values())})")
    if skipped:
        print(f"skipped {len(skipped)} chorale(s) without the four voices on programs "
              f"{sorted(VOICE_PROGRAMS.values())}: {', '.join(skipped)}", file=sys.stderr)
    return chorales


def _sampling_overrides(items: list[str]) -> dict:
    """``--sampling KEY=VALUE ...`` as keyword arguments of ``harmonize``, checked before the model loads."""
    import dataclasses

    from amt.errors import AmtError, ConfigError
    from amt.sampling import SamplingOptions
    from amt.training.harmony import SAMPLING

    # The seed and the voices are the evaluation's own; every other sampling knob may change.
    knobs = {f.name for f in dataclasses.fields(SamplingOptions)} - {"seed", "instruments"}
    allowed = knobs | set(SAMPLING)
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in allowed:
            raise ConfigError(f"--sampling {item!r}: expected KEY=VALUE with KEY one of "
                              f"{', '.join(sorted(allowed))}")
        try:
            overrides[key] = json.loads(text)
        except ValueError:
            raise ConfigError(f"--sampling {item!r}: {text!r} is not a JSON value (true, false, null, "
                              "a number)") from None
    options = {**SAMPLING, **overrides}
    density = options.pop("voice_density")
    if density is not None and not (isinstance(density, (int, float)) and density > 0):
        raise ConfigError(f"--sampling: voice_density must be a positive number or null, got {density!r}")
    try:
        SamplingOptions.from_dict(options).validate()
    except (AmtError, TypeError) as error:
        raise ConfigError(f"--sampling: {error}") from None
    return overrides


def _accompaniment(args: argparse.Namespace, model, pieces: list) -> dict:
    """Accompany each piece's melody; print the table (original, model, rule, random); the JSON entry."""
    import time

    from amt.training.accompaniment import accompaniment_report, format_accompaniment_table

    sampling = {k: v for k, v in args.sampling.items() if k != "voice_density"}
    started = time.perf_counter()
    report = accompaniment_report(model, pieces, seconds=args.seconds, samples=args.samples, seed=args.seed,
                                  sampling=sampling)
    print(f"{args.model} accompanying the melody of {len(pieces)} pieces of {args.accompany} (first "
          f"{args.seconds:g} s, {args.samples} sample(s) each, seed {args.seed}) in "
          f"{time.perf_counter() - started:.0f} s")
    print(format_accompaniment_table(report))
    return {"midi_dir": args.accompany, "sampling": sampling, **report}


def _harmonization(args: argparse.Namespace, model, chorales: list) -> dict:
    """Harmonise each chorale's soprano; print the table (model, Bach, random); the JSON entry."""
    import time

    from tqdm import tqdm

    from amt.tokenization.midi import write_midi
    from amt.training.harmony import SAMPLING, format_harmony_table, harmonize, harmonize_report

    if args.midi_out:
        Path(args.midi_out).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    outputs = []
    for i, chorale in enumerate(tqdm(chorales, desc="harmonize", unit="chorale", disable=None)):
        # One piece per call with seed + i: the seeds harmonize() gives piece i of a whole list.
        outputs.extend(harmonize(model, [chorale], samples=args.samples, seed=args.seed + i, **args.sampling))
        if args.midi_out:
            for k, sample in enumerate(outputs[-1]):
                write_midi(Path(args.midi_out) / f"{Path(chorale.source).stem}-{k + 1}.mid", sample.events,
                           meta=sample.meta, velocities=sample.velocities, tracks=sample.tracks)
    seconds = time.perf_counter() - started
    report = harmonize_report(outputs, chorales, seed=args.seed)
    print(f"{args.model} harmonising the soprano of {len(chorales)} {args.split} chorales of "
          f"{args.harmonize} ({args.samples} sample(s) each, seed {args.seed}; random baseline: "
          f"{report['random_samples']} samples); generated in {seconds:.0f} s")
    print(format_harmony_table(report))
    return {"midi_dir": args.harmonize, "split": args.split,
            "chorales": [Path(c.source).name for c in chorales], "samples_per_chorale": args.samples,
            "sampling": {**SAMPLING, **args.sampling}, "seconds": round(seconds, 1), **report}
