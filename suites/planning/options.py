"""Every option of a suite command in one object, :class:`RunOptions`.

Filled in the order defaults (here) <- a suite file's option keys <- the command line. The command line's
parser is generated from these fields (``suites/run.py``); a suite file's option keys are their names; and
``suites.planning.plan.plan(suite, options)`` takes one from Python as from the command line (as BenchMARL's
``Benchmark(...)`` does). Adding an option is one field here, and its consumer.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from envs.errors import UsageError

WANDB_PROJECT = "marl-wm-bench"  # --wandb without a project name


def positive_int(flag: str, least: int = 1):
    """argparse type: a whole number of at least ``least``, with the option's name in the message."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{flag} must be >= {least}, got {value}")
        return value
    return parse


def _option(default, help: str, *, kind: str = "str", in_file: bool = True, key: str | None = None, **argparse_kwargs):
    """A RunOptions field: its help, what its values are (``kind``: str, positive, float, flag, names, path,
    assignments, project), whether a suite file may set it, and its command-line/file name if not the field's."""
    return field(default=default, metadata=dict(help=help, kind=kind, in_file=in_file, key=key, argparse=argparse_kwargs))


@dataclass(frozen=True)
class RunOptions:
    # Which of the suite's runs, and how long. A suite file states these as the suite's own fields.
    seeds: int | None = _option(None, "number of seeds 0..N-1 (default: the suite's)", kind="positive", in_file=False)
    algorithms: tuple[str, ...] = _option((), "subset of the suite's algorithms", kind="names", in_file=False)
    tasks: tuple[str, ...] = _option((), "tasks to run instead of the suite's: any registered task, e.g. smac/3m",
                                     kind="names", in_file=False)
    budget: str | None = _option(None, "named budget of the suite (tiny, short, paper)", in_file=False)
    steps: int | None = _option(None, "environment steps per run (overrides the budget)", kind="positive", in_file=False)
    eval_episodes: int | None = _option(None, "episodes per evaluation", kind="positive", in_file=False)
    preset: str | None = _option(None, "algorithm preset (default: the suite's)", in_file=False)
    # The algorithms' settings.
    assignments: tuple[str, ...] = _option(
        (), "override one field of the algorithm config (repeatable), e.g. --set model_lr=1e-4 or --set "
            "mappo.ppo_epoch=10; an unscoped field applies to every selected algorithm that has it. Each run's "
            "config.json records the values used", kind="assignments", key="set", metavar="[ALGORITHM.]FIELD=VALUE")
    variant: str = _option("", "name these runs as a variant of each algorithm (with --set or --preset): records under "
                               "<algorithm>+NAME beside the algorithm's own, analysed as an algorithm of their own",
                           metavar="NAME")
    # Where and how they run.
    device: str = _option("cpu", "cpu, cuda, cuda:1, ...")
    backend: str = _option("auto", "auto, or a family's backend (SMAC: sim or sc2); a backend of another family leaves "
                                   "a task on its own family's choice")
    compile_env: bool = _option(False, "torch.compile the SMAC simulator's step: several times faster stepping after "
                                       "tens of seconds of compiling per run; worth it from about 100k steps "
                                       "(docs/performance.md)", kind="flag")
    results: Path = _option(Path("results"), "results directory (default: ./results)", kind="path", in_file=False)
    seed_batch: int = _option(1, "train up to K seeds of the same task, algorithm and settings in one process as one "
                                 "batch of environments, each seed still a run of its own (record, checkpoint, "
                                 "evaluation); default 1 (docs/running-suites.md)", kind="positive", metavar="K")
    threads: int | None = _option(None, "torch CPU threads per run process (default: OMP_NUM_THREADS if set, else 1, "
                                        "which measured fastest at the CPU presets and holds up beside other jobs; "
                                        "docs/performance.md)", kind="positive", metavar="N")
    jobs: int = _option(1, "local launcher: runs in parallel, each in its own process (default 1: in this process)",
                        kind="positive")
    launcher: str = _option("local", "local (default), ray or submitit")
    address: str | None = _option(None, "ray: address of a running cluster (default: start a local instance on the "
                                        "loopback interface)")
    gpus_per_run: float | None = _option(None, "ray: GPU fraction per run; submitit: GPUs per job (default 1 on cuda, "
                                               "else 0)", kind="float")
    cpus_per_run: float | None = _option(None, "ray and submitit: CPUs per run (default 1)", kind="float")
    cluster: str | None = _option(None, "submitit: slurm, or local (the same jobs as processes on this machine)")
    partition: str | None = _option(None, "submitit on slurm: the partition to submit to")
    time: int | None = _option(None, "submitit: time limit per run in minutes (default 1440)", kind="positive")
    array_parallelism: int | None = _option(None, "submitit on slurm: at most this many runs at once (default: SLURM's)",
                                            kind="positive")
    requeues: int | None = _option(None, "submitit: how many times a job that reaches its time limit checkpoints and "
                                         "is requeued to go on (preemptions do not count); ray: how many times a task "
                                         "whose worker died is retried, resuming from checkpoints (default 3)",
                                   kind="count")
    wandb: str = _option("", f"also log every run to Weights & Biases (project default {WANDB_PROJECT}); offline into "
                             "each run's directory when there are no credentials. Needs pip install -e '.[wandb]'",
                         kind="project", metavar="PROJECT")
    dry_run: bool = _option(False, "list the runs and their status, run nothing", kind="flag", in_file=False)
    status: bool = _option(False, "show every run's state, steps, rate, time left and holder, read from the results "
                                  "folder alone (runs of any launcher, on any node sharing it); run nothing",
                           kind="flag", in_file=False)

    @staticmethod
    def key(f: dataclasses.Field) -> str:
        """The field's name in a suite file (its flag without the dashes, ``_`` for ``-``)."""
        return f.metadata["key"] or f.name

    @classmethod
    def file_keys(cls) -> tuple[str, ...]:
        return tuple(cls.key(f) for f in dataclasses.fields(cls) if f.metadata["in_file"])

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One command-line option per field. Absent options stay out of the parsed namespace, so that only
        what was typed overrides the file's and the defaults (``merged``)."""
        for f in dataclasses.fields(cls):
            flag = "--" + cls.key(f).replace("_", "-")
            kind, extra = f.metadata["kind"], dict(f.metadata["argparse"])
            extra.update({"positive": dict(type=positive_int(flag)), "count": dict(type=positive_int(flag, 0)),
                          "float": dict(type=float),
                          "flag": dict(action="store_true"), "names": dict(nargs="+"), "path": dict(type=Path),
                          "assignments": dict(action="append"), "project": dict(nargs="?", const=WANDB_PROJECT),
                          "str": {}}[kind])
            parser.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, help=f.metadata["help"], **extra)

    @classmethod
    def from_file(cls, path: Path, content: dict) -> dict:
        """The option keys of a suite file's ``content``, as field values; a wrong type is refused naming the
        file, the key and what it takes."""
        out = {}
        for f in dataclasses.fields(cls):
            key = cls.key(f)
            if not f.metadata["in_file"] or key not in content:
                continue
            value, kind = content[key], f.metadata["kind"]
            if kind == "assignments":
                value = [value] if isinstance(value, str) else value
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise UsageError(f"suite file {path}: {key} must be a list of \"[ALGORITHM.]FIELD=VALUE\" texts")
                value = tuple(value)
            elif kind == "project" and isinstance(value, bool):
                value = WANDB_PROJECT if value else ""
            elif not _fits(kind, value):
                wanted = {"positive": "an integer >= 1", "count": "an integer >= 0", "float": "a number",
                          "flag": "true or false"}.get(kind, "a text")
                raise UsageError(f"suite file {path}: {key} must be {wanted}, got {value!r}")
            out[f.name] = float(value) if kind == "float" else value
        return out

    @classmethod
    def merged(cls, file: dict, command_line: dict) -> RunOptions:
        """Defaults <- ``file`` <- ``command_line`` (both field -> value). A ``--set`` of a field the file sets
        too replaces the file's."""
        values = {**file, **command_line}
        typed = {_assigned_field(a) for a in command_line.get("assignments", ())}
        values["assignments"] = tuple(a for a in file.get("assignments", ()) if _assigned_field(a) not in typed) + tuple(
            command_line.get("assignments", ()))
        for name in ("algorithms", "tasks"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


def _fits(kind: str, value) -> bool:
    if kind in ("positive", "count"):
        return isinstance(value, int) and not isinstance(value, bool) and value >= (kind == "positive")
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "flag":
        return isinstance(value, bool)
    return isinstance(value, str)


def _assigned_field(assignment: str) -> str:
    return assignment.partition("=")[0].strip()
