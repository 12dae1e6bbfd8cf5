"""``python -m builder train``: read and check the data, train, evaluate, write the bundle, print one JSON line."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder import distributed
from builder.cli.args import (
    DEVICE_CHOICES,
    EXIT_OK,
    FORMATTER,
    MODEL_CHOICES,
    OPTIMIZER_CHOICES,
    PROG,
    SCHEDULE_CHOICES,
    CliError,
    add_data_options,
    add_max_file_option,
    check_threshold,
    finite_number,
    whole_number,
)
from builder.cli.data_choice import SAMPLE_NOUNS, DataChoice, choose_data
from builder.cli.files import existing_path, human_bytes, input_file, output_file, with_max_file_mb
from builder.cli.stderr_log import show_logs
from builder.errors import DataError, SpecError, TrainingError
from builder.jsonsafe import strict
from builder.runs import record_cli_run

if TYPE_CHECKING:  # torch and pandas load only when a command needs them: --help stays instant
    from builder.spec import ModelSpec
    from builder.train import History, TrainConfig, TrainControl
    from builder.trained import TrainedModel

log = logging.getLogger("builder.cli")  # one logger name for every command, as before the split


DEFAULT_BUDGET_MINUTES = 2.0  # --auto without --budget-minutes
PROGRESS_INTERVAL_S = 0.5  # at most two epoch lines a second; the first epoch always shows
TRAIN_DESCRIPTION = """\
Learn a model from your data and save it as a bundle. The data is a table (CSV, TSV, TXT,
Excel, Parquet or JSON) or a .zip of image folders (one folder per class, named after it):

  a table and --target COL       predicts that column from the others (MLP by default);
  a table whose input is text    reads the text column (a bag-of-n-grams MLP below 20,000
                                 texts, a Transformer above; --text-column picks it);
  a .zip of image folders        tells the classes apart (CNN by default; no --target);
  --task forecast                forecasts --target from its past, by --time-column (LSTM);
  --task anomaly                 finds unusual rows, no column to predict (autoencoder).

Settings you do not give are chosen from the data (its kind, task and size) and logged.

The data is split into training, validation and test parts (a series by time); the network
trains on the first, keeps its best epoch on the second and is scored on the third, next to a
simple baseline fitted on the same data. Progress goes to stderr, one line per epoch; the last
line of stdout is one JSON object with the task, the model, the device, the test metrics, the
baseline's test metrics and the bundle path.
"""
TRAIN_EPILOG = f"""\
examples:
  {PROG} train --data churn.csv --target churned --out churn.zip
  {PROG} train --data houses.xlsx --target price --model linear --epochs 50 --out price.zip
  {PROG} train --data iris.csv --target species --spec my_design.json --out iris.zip
  {PROG} train --data churn.csv --target churned --out churn.zip --auto --budget-minutes 5
  {PROG} train --data churn.csv --target churned --out churn.zip --threshold 0.3
  {PROG} train --data photos.zip --out photos_model.zip
  {PROG} train --data reviews.csv --target sentiment --out reviews_model.zip
  {PROG} train --data sales.csv --task forecast --time-column date --target sales --window 28 --horizon 7 --out sales_model.zip
  {PROG} train --data transactions.csv --task anomaly --out unusual.zip
"""


def add_command(commands: argparse._SubParsersAction, debug: argparse.ArgumentParser) -> None:
    """Add the ``train`` command and its options to ``commands`` (``debug``: the shared --debug)."""
    train = commands.add_parser("train", help="learn a model from a data file and save it as a bundle",
                                description=TRAIN_DESCRIPTION, epilog=TRAIN_EPILOG,
                                formatter_class=FORMATTER, parents=[debug], allow_abbrev=False)
    data = train.add_argument_group("data")
    data.add_argument("--data", required=True, metavar="PATH",
                      help="what to learn from: a table (CSV, TSV, TXT, Excel, Parquet or JSON) or "
                           "a .zip of image folders, one folder per class")
    add_data_options(data)
    data.add_argument("--val-fraction", type=finite_number, metavar="F",
                      help="share of the data kept aside to pick the best epoch (default: 0.15)")
    data.add_argument("--test-fraction", type=finite_number, metavar="F",
                      help="share of the data kept aside for the final score (default: 0.15)")
    data.add_argument("--test-data", metavar="PATH",
                      help="score on this file (same columns, or a .zip of the same image folders) "
                           "instead of a share of --data; the model never trains on it")
    add_max_file_option(data)

    model = train.add_argument_group("model")
    model.add_argument("--model", choices=MODEL_CHOICES, default="auto", metavar="FAMILY",
                       help="model family: " + ", ".join(MODEL_CHOICES) + ". auto picks from the "
                            "data: an MLP for a table, a CNN for an image zip, a Transformer for a "
                            "text column, an LSTM for a forecast, an autoencoder for anomaly "
                            "detection (default: auto)")
    model.add_argument("--spec", metavar="SPEC.json",
                       help="a design file saved from the Build page (its family is the model)")

    settings = train.add_argument_group("training")
    settings.add_argument("--epochs", type=whole_number(), metavar="N",
                          help="passes over the training data (default: chosen from the data; training stops "
                               "early when the validation loss has not improved for --patience epochs)")
    settings.add_argument("--batch-size", type=whole_number(), metavar="N",
                          help="rows (images, texts, windows) per weight update (default: chosen from the data)")
    settings.add_argument("--lr", type=finite_number, metavar="F",
                          help="learning rate, the size of each update (default: chosen from the data)")
    settings.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, metavar="NAME",
                          help="the update rule: " + ", ".join(OPTIMIZER_CHOICES) + "; adam suits "
                               "almost everything (default: chosen from the data)")
    settings.add_argument("--momentum", type=finite_number, metavar="F",
                          help="for --optimizer momentum only (default: 0.9)")
    settings.add_argument("--weight-decay", type=finite_number, metavar="F",
                          help="pull weights towards zero against overfitting (default: chosen from the data)")
    settings.add_argument("--schedule", choices=SCHEDULE_CHOICES, metavar="NAME",
                          help="how the learning rate changes over the run: " + ", ".join(SCHEDULE_CHOICES)
                               + " (default: chosen from the data)")
    settings.add_argument("--warmup-epochs", type=whole_number(0), metavar="N",
                          help="raise the learning rate from near zero over the first N epochs "
                               "(default: chosen from the data)")
    settings.add_argument("--clip-grad", type=finite_number, metavar="F",
                          help="cap the gradient norm of each update at F, e.g. 1.0 (default: off)")
    settings.add_argument("--label-smoothing", type=finite_number, metavar="F",
                          help="classes only: train towards 1-F instead of certainty, e.g. 0.1 "
                               "(default: chosen from the data)")
    settings.add_argument("--class-weights", metavar="WEIGHTS",
                          help="classes only: off, balanced (rare classes count more), or a weight "
                               "per class such as 'yes=3,no=1' (default: off)")
    settings.add_argument("--config", metavar="SETTINGS.json", dest="config_file",
                          help="training settings saved from the Train page (any of its settings, "
                               "e.g. Adam's betas); options given here override the file's")
    settings.add_argument("--patience", type=whole_number(), metavar="N",
                          dest="early_stopping_patience",
                          help="stop after N epochs without a better validation loss; 0 turns "
                               "early stopping off (default: chosen from the data)")
    settings.add_argument("--seed", type=whole_number(), metavar="N",
                          help="fixes the split, shuffling and initial weights, so a run can be "
                               "repeated (default: 42)")
    settings.add_argument("--device", choices=DEVICE_CHOICES, metavar="DEVICE",
                          help="where to train: auto, cpu, cuda (NVIDIA GPU) or mps (Apple GPU); "
                               "auto uses a GPU when there is one (default: auto)")
    settings.add_argument("--max-minutes", type=finite_number, metavar="F",
                          help="stop after this many minutes and keep the best model so far "
                               "(default: no limit)")
    settings.add_argument("--cv", type=whole_number(), metavar="K", dest="cv_folds",
                          help="k-fold cross-validation for small data: train K times on the "
                               "non-test rows, report each metric's mean and spread for the "
                               "network and the baseline, then train the final model on all of "
                               "them (about K+1 times the time; default: off)")

    search = train.add_argument_group("finding a better model")
    search.add_argument("--auto", action="store_true",
                        help="search designs of the chosen family and training settings (optuna: "
                             "TPE with pruning) and keep the best; trial 1 is the design and "
                             "settings given, and only validation rows pick the winner")
    search.add_argument("--budget-minutes", type=finite_number, metavar="F",
                        help=f"with --auto: minutes for the whole command, may be fractional "
                             f"(default: {DEFAULT_BUDGET_MINUTES:g})")
    search.add_argument("--search-storage", metavar="URL",
                        help="with --auto: the database of the study, any URL optuna accepts (e.g. "
                             "sqlite:///shared.db, postgresql://user@host/db); machines running "
                             "the same command with the same URL share one study (default: a "
                             "new study in BUNDLE.search.db beside the bundle)")

    out = train.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="BUNDLE.zip",
                     help="where to save the trained model bundle (its folder is created)")
    out.add_argument("--threshold", type=finite_number, metavar="F",
                     help="a yes/no model: its decision threshold, saved in the bundle: the second "
                          "class (in sorted order) is the answer when its probability is above F, "
                          "between 0 and 1; the test scores are measured at it (default: 0.5)")
    parallel = train.add_argument_group(
        "several processes (data-parallel, torchrun-style; gloo on CPUs, NCCL on GPUs)")
    parallel.add_argument("--nproc", type=whole_number(1), default=1, metavar="N",
                          help="train in N processes on this machine, each on its share of every batch "
                               "(one per GPU; on CPUs, at most one per core); --batch-size stays the "
                               "batch of all processes together (default: 1)")
    parallel.add_argument("--nnodes", type=whole_number(1), default=1, metavar="N",
                          help="machines taking part; run the same command on each (default: 1)")
    parallel.add_argument("--node-rank", type=whole_number(0), default=0, metavar="I",
                          help="this machine's number, 0 to nnodes-1 (default: 0)")
    parallel.add_argument("--master-addr", default="127.0.0.1", metavar="HOST",
                          help="address of machine 0, reachable from the others (default: 127.0.0.1)")
    parallel.add_argument("--master-port", type=whole_number(1, 65535), default=29500, metavar="PORT",
                          help="a free port on machine 0 (default: 29500)")
    train.set_defaults(run=with_max_file_mb(run_train))


def run_train(args: argparse.Namespace) -> int:
    """``train``: read and check the data, train, evaluate, write the bundle, print the JSON line."""
    from builder.train import TrainControl

    started = time.monotonic()  # --budget-minutes covers the whole command, file in to bundle out
    launched = distributed.launched_world()
    if (args.nproc > 1 or args.nnodes > 1) and launched is None:
        return _launch_processes(args)
    if launched is not None and not launched.is_main:
        logging.getLogger("builder").setLevel(logging.WARNING)  # rank 0 tells the story once
    _check_search_options(args)
    check_threshold(args.threshold)  # its range now; whether the model is yes/no once the data is read
    data_file = existing_path(args.data, "--data")
    if data_file.is_dir():
        raise DataError(f"--data needs a file, but {args.data} is a folder: to learn from images, zip "
                        "the class folders (one folder per class) and pass the .zip.")
    out_file = output_file(args.out, "--out", "model.zip")
    spec = load_spec(args.spec) if args.spec else None
    family = _resolve_family(args.model, spec)
    given = _given_settings(args)  # checked before the data is read: a typo fails at once
    from builder.export.onnx_export import wait_for_exporter, warm_up_exporter  # not for the launcher above

    if launched is None or launched.is_main:  # the process that will write the bundle
        warm_up_exporter()  # its ~3 s of start-up overlaps reading the data
    choice = choose_data(args, data_file, family)
    data_shape = choice.shape  # of --data alone, before --test-data joins it
    check_threshold(args.threshold, choice.data_spec.task)
    test_rows = None
    if args.test_data is not None:
        from builder.cli.test_file import append_test_file

        choice.source, test_rows = append_test_file(choice.source, choice.data_spec,
                                                    input_file(args.test_data, "--test-data"))
    config = _train_config(choice, given, test_rows)

    control = TrainControl()
    progress = ProgressLog(choice.family, noun=SAMPLE_NOUNS[choice.data_spec.kind])
    wait_for_exporter()  # before training imports torch's compiler modules too (see its comment)
    world = distributed.launched_world()
    if world is not None:
        return _train_one_process(world, choice, config, spec, progress, control, test_rows, args, out_file,
                                  data_file, data_shape)
    with _stop_on_ctrl_c(control), contextlib.redirect_stdout(sys.stderr):  # stdout: the JSON only
        from builder.pipeline import train_model

        if args.auto:
            trained, found = _search(args, choice, config, spec, out_file, control, started, test_rows)
        else:
            trained = train_model(choice.hand_over_source(), choice.data_spec, config, spec=spec, family=choice.family,
                                  callbacks=[progress], control=control, test_rows=test_rows, release_source=True)
    summary = _finish(trained, args, out_file, choice, data_file, data_shape)
    if args.auto:
        summary["search"] = found.summary()
    print(json.dumps(strict(summary), allow_nan=False))
    return EXIT_OK


def _finish(trained: TrainedModel, args: argparse.Namespace, out_file: Path, choice: DataChoice, data_file: Path,
            data_shape: tuple[int | None, int | None] | None) -> dict[str, Any]:
    """The threshold, the bundle and the run store; the JSON line's object."""
    with contextlib.redirect_stdout(sys.stderr):
        if args.threshold is not None:
            _apply_threshold(trained, args.threshold)
        from builder.export import write_bundle  # ONNX is imported only once there is a model

        report = write_bundle(trained, out_file, sample_rows=choice.sample)
    for note in report.warnings:
        log.warning("%s", note)
    log.info("bundle written to %s (%s)", out_file, human_bytes(report.size))
    record_cli_run(trained, data_file, choice.sample, data_shape=data_shape, bundle=out_file)
    return _train_summary(trained, out_file)


def _launch_processes(args: argparse.Namespace) -> int:
    """--nproc / --nnodes: check what cannot be split, then start this command in each process."""
    if args.auto or args.cv_folds:
        raise SpecError("--nproc and --nnodes train one design on one split: leave out --auto and --cv, "
                        "or train in one process.")
    out_file = output_file(args.out, "--out", "model.zip")  # refused here, before any process starts
    log.info("training in %d processes on each of %d machine(s)", args.nproc, args.nnodes)
    code = distributed.launch(args.argv, args.nproc, args.nnodes,
                              args.node_rank, args.master_addr, args.master_port)
    if code != 0:
        raise TrainingError(f"A training process failed (see the log above); no bundle was written to {out_file}.")
    return EXIT_OK


def _train_one_process(world: distributed.World, choice: DataChoice, config: TrainConfig, spec: ModelSpec | None,
                       progress: ProgressLog, control: TrainControl, test_rows: Any, args: argparse.Namespace,
                       out_file: Path, data_file: Path, data_shape: tuple[int | None, int | None] | None) -> int:
    """One of the --nproc processes: all train together; rank 0 alone scores, writes and prints."""
    from builder.pipeline import evaluate_trained, fit_design, prepare_for_design

    distributed.join(world)
    try:
        with _stop_on_ctrl_c(control), contextlib.redirect_stdout(sys.stderr):
            data_spec, prepared, shape, design = prepare_for_design(
                choice.hand_over_source(), choice.data_spec, config, spec, choice.family, test_rows,
                release_source=True)
            callbacks = [progress] if world.is_main else []
            trained = fit_design(prepared, shape, data_spec, config, design, callbacks, control)
    finally:
        distributed.leave()
    if not world.is_main:
        return EXIT_OK
    with contextlib.redirect_stdout(sys.stderr):
        evaluate_trained(trained, prepared)
    trained.info["world_size"] = world.size
    summary = _finish(trained, args, out_file, choice, data_file, data_shape)
    summary["world_size"] = world.size
    print(json.dumps(strict(summary), allow_nan=False))
    return EXIT_OK


def _apply_threshold(trained: TrainedModel, threshold: float) -> None:
    """--threshold: the decision threshold saved with the model; the test and validation scores are
    measured again at it, from the answers the run kept for every row (the Evaluate page's data)."""
    import numpy as np

    from builder.evaluate import compute_metrics
    from builder.jsonsafe import plain

    pre = trained.preprocessor
    pre.set_decision_threshold(threshold, chosen="with --threshold when the model was trained")
    results = trained.test_results or {}
    counts = trained.info.get("rows", {})
    for split, kept, count in (("test", results, counts.get("test")),
                               ("val", results.get("val") or {}, counts.get("validation"))):
        actual, probabilities = kept.get("actual"), kept.get("probabilities")
        if not actual or probabilities is None or split not in trained.metrics:
            continue
        if len(actual) != count:  # a sample of a large set: its scores stay those at 0.5
            log.warning("the %s scores are at a threshold of 0.5: only a sample of its %s rows was kept to "
                        "measure them again", "test" if split == "test" else "validation", count)
            continue
        # decode_class_outputs' rule: the second class above the threshold. Kept probabilities have 6
        # decimals, so a row within 5e-7 of the threshold may count on the other side here.
        proba = np.asarray(probabilities, dtype=np.float64)  # (N, 2) in class order
        predicted = np.asarray(pre.classes, dtype=object)[(proba[:, 1] > threshold).astype(np.int64)]
        trained.metrics[split] = compute_metrics("binary", np.asarray(actual, dtype=object), predicted,
                                                 proba=proba, classes=pre.classes)
        kept["predicted"] = plain(predicted.tolist())
    log.info("decision threshold %g: the second class, %s, is the answer above it", threshold, pre.classes[1])


def _check_search_options(args: argparse.Namespace) -> None:
    """--budget-minutes and --search-storage only mean something with --auto."""
    for option, value in (("--budget-minutes", args.budget_minutes), ("--search-storage", args.search_storage)):
        if value is not None and not args.auto:
            raise CliError(f"{option} only applies to a search: add --auto, or leave out {option}.")
    if args.auto and args.cv_folds is not None:
        raise CliError("--cv and --auto cannot be combined: a search picks its winner on one "
                       "validation split. Leave out one of them.")
    if args.budget_minutes is not None and not 0 < args.budget_minutes <= 10_080:
        raise CliError(f"--budget-minutes must be above 0 and at most 10080 (a week); got "
                       f"{args.budget_minutes:g}. Try 2.")


def _search(args: argparse.Namespace, choice: Any, config: TrainConfig, spec: ModelSpec | None, out_file: Path,
            control: TrainControl, started: float, test_rows: Any) -> tuple[TrainedModel, Any]:
    """--auto: search the family's designs and settings within the budget; one stderr line per trial."""
    from builder.search import search

    budget = args.budget_minutes if args.budget_minutes is not None else DEFAULT_BUDGET_MINUTES
    storage, name = args.search_storage, None  # a shared storage: the same command joins one study
    if storage is None:  # a new study of its own beside the bundle
        storage = f"sqlite:///{out_file.with_suffix('.search.db')}"
        name = f"{out_file.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    log.info("searching for a better model for %g minutes", budget)
    engine = logging.getLogger("builder.train")
    level = engine.level
    engine.setLevel(logging.WARNING)  # its "training ended" per trial: the trial's own line says it
    try:
        return search(choice.source, choice.data_spec, config, budget, spec=spec, family=choice.family,
                      storage=storage, name=name, callbacks=[SearchLog()], control=control, started=started,
                      test_rows=test_rows)
    finally:
        engine.setLevel(level)


class SearchLog:
    """Training callback of a search: shows the held-back logs when the first trial starts (the
    search itself logs one line per trial)."""

    def on_train_begin(self, info: dict[str, Any]) -> None:
        show_logs()

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        """No per-batch or per-epoch lines: one line per trial is enough."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """See ``on_batch_end``."""

    def on_train_end(self, history: History) -> None:
        """See ``on_batch_end``."""


def load_spec(path: str, strict: bool = True) -> ModelSpec:
    """Read a design file."""
    from builder.spec import ModelSpec

    return ModelSpec.from_dict(_read_json(input_file(path, "--spec")), strict=strict)


def _read_json(file: Path, what: str = "design") -> Any:
    page = "Build" if what == "design" else "Train"
    try:
        return json.loads(file.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "it is not text"
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise SpecError(f"The {what} file {file.name} is not valid JSON ({reason}{where}): save the "
                        f"{what} from the {page} page and use that.") from None
    except RecursionError:  # json's answer to nesting deeper than the interpreter allows
        raise SpecError(f"The {what} file {file.name} is nested too deeply (lists or objects inside each other "
                        f"hundreds of levels deep): save the {what} from the {page} page and use that.") from None


def _resolve_family(model: str, spec: ModelSpec | None) -> str | None:
    """The family to train: the design's, the one asked for, or ``None`` (auto: from the data)."""
    if spec is None:
        return None if model == "auto" else model
    if model not in ("auto", spec.family):
        raise SpecError(f"--model {model} and the design file's family, {spec.family}, disagree: "
                        "leave out --model, or change the family in the design.")
    return spec.family


def _given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the user chose: the --config file's, then the options given on top (validated)."""
    from builder.train import TrainConfig

    names = ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule",
             "warmup_epochs", "clip_grad", "label_smoothing", "class_weights", "seed", "device",
             "early_stopping_patience", "max_minutes", "val_fraction", "test_fraction", "cv_folds")
    values = _read_json(input_file(args.config_file, "--config"), "settings") if args.config_file else {}
    if not isinstance(values, dict):
        raise SpecError(f"The settings file {args.config_file} must hold one JSON object of settings, "
                        "like the one the Train page saves.")
    values.update({name: getattr(args, name) for name in names if getattr(args, name) is not None})
    TrainConfig.from_dict(values)
    return values


def _train_config(choice: DataChoice, given: dict[str, Any], test_rows: Any) -> TrainConfig:
    """The settings suggested for this data (``builder.defaults``), with the user's on top."""
    from builder.defaults import suggested_config, training_rows
    from builder.train import TrainConfig

    defaults = TrainConfig()
    n_rows = training_rows(len(choice.source), given.get("val_fraction", defaults.val_fraction),
                           given.get("test_fraction", defaults.test_fraction), test_rows)
    config = suggested_config(choice.data_spec.kind, choice.data_spec.task, n_rows, **given)
    chosen = {k: v for k, v in config.to_dict().items() if k not in given and v != getattr(defaults, k)}
    if chosen:
        log.info("settings chosen for this data: %s", ", ".join(f"{k}={v}" for k, v in chosen.items()))
    return config


@contextlib.contextmanager
def _stop_on_ctrl_c(control: TrainControl) -> Iterator[None]:
    """The first Ctrl+C ends training after the current batch, keeping the best epoch (the bundle is
    still written); a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handle(signum: int, frame: Any) -> None:
        if control.stopped:
            raise KeyboardInterrupt
        log.warning("stopping after this batch and keeping the best epoch (Ctrl+C again to abort)")
        control.stop()

    signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class ProgressLog:
    """Training callback: one concise stderr line per epoch, at most one per ``interval_s``.

    The first and the last planned epoch always show; when training ends earlier, the last epoch
    held back by the throttle shows at the end (the engine itself logs why training ended).
    """

    def __init__(self, family: str, interval_s: float = PROGRESS_INTERVAL_S, noun: str = "rows"):
        self.family = family
        self.noun = noun  # what one training example is: rows, images, texts or windows
        self.interval_s = interval_s
        self._last_shown = -math.inf
        self._pending: str | None = None

    def on_train_begin(self, info: dict[str, Any]) -> None:
        show_logs()  # the inputs are good: what was held back about them is worth seeing now
        self._last_shown = -math.inf  # each cross-validation fold shows its first epoch again
        log.info("%straining %s on %s: %s training %s, %s validation %s, %s parameters, "
                 "batch size %s, up to %s epochs", f"{info['stage']}: " if info.get("stage") else "", self.family, info.get("device", "?"),
                 info.get("train_rows", "?"), self.noun, info.get("val_rows", "?"), self.noun,
                 f"{info['parameters']:,}" if "parameters" in info else "?",
                 info.get("batch_size", "?"), info.get("epochs", "?"))

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        """Batch events feed the app's live chart; one line per epoch is enough here."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        line = _epoch_line(epoch, logs)
        now = time.monotonic()
        if epoch in (1, logs.get("epochs")) or now - self._last_shown >= self.interval_s:
            log.info("%s", line)
            self._last_shown, self._pending = now, None
        else:
            self._pending = line

    def on_train_end(self, history: History) -> None:
        if self._pending:
            log.info("%s", self._pending)
            self._pending = None


def _epoch_line(epoch: int, logs: dict[str, Any]) -> str:
    total = logs.get("epochs")
    parts = []
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "val_rmse"):
        value = logs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{key} {value:.4g}")
    seconds = logs.get("seconds")
    timing = f" ({seconds:.2f} s)" if isinstance(seconds, (int, float)) else ""
    return f"epoch {epoch}{f'/{total}' if total else ''}: {', '.join(parts)}{timing}"


def _train_summary(trained: TrainedModel, out_file: Path) -> dict[str, Any]:
    """The JSON object ``train`` prints as the last line of stdout (``baseline`` is ``null`` for
    anomaly detection, which has none)."""
    baseline = None
    if trained.baseline is not None:
        baseline = {"name": trained.baseline.name, "test": dict(trained.baseline.metrics)}
    return {
        "task": trained.task,
        "model": trained.spec.effective_family(),
        "device": trained.device,
        "epochs_run": trained.history.epochs_run,
        "seconds": round(float(trained.seconds), 3),
        "metrics": {"test": dict(trained.metrics.get("test", {}))},
        "baseline": baseline,
        "bundle": str(out_file),
        # A forecast names the time column it read (the one date column when none was given).
        **({"time_column": trained.data_spec.options["time_column"]}
           if trained.data_spec.kind == "series" else {}),
        # Text names the column whose texts it read (found by itself when --text-column was not given).
        **({"text_column": trained.data_spec.options["text_column"]}
           if trained.data_spec.kind == "text" else {}),
        **({"cross_validation": _cv_summary(trained.info["cross_validation"])}
           if "cross_validation" in trained.info else {}),
        # A yes/no model trained with --threshold names it: the test scores above are measured at it.
        **({"decision_threshold": trained.preprocessor.decision_threshold}
           if getattr(trained.preprocessor, "decision_threshold_chosen", None) else {}),
    }


def _cv_summary(cv: dict[str, Any]) -> dict[str, Any]:
    """--cv's part of the JSON line: mean and spread per metric over the folds, and the refit's epochs."""
    return {key: cv.get(key) for key in ("folds", "method", "network", "baseline", "refit_epochs")}
