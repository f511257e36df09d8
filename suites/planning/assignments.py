"""The ``--set`` language: ``[ALGORITHM.]FIELD=VALUE`` texts (a suite file's ``set`` list, the CLI's
``--set``) turned into each algorithm's typed config overrides, and comma-separated values into sweep grids.
The fields and their types come from the algorithms' configs (``algorithms.config_defaults``)."""
from __future__ import annotations

import difflib
import itertools

from algorithms import check_algorithm, config_defaults
from envs.errors import UsageError

TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_assignments(assignments: list[str], algorithms: list[str]) -> dict[str, dict]:
    """``[ALGORITHM.]FIELD=VALUE`` texts (the CLI's ``--set``) -> each algorithm's typed config overrides.

    An unscoped field applies to every listed algorithm that has it; values are converted to the field's
    type (bool accepts true/false, yes/no, on/off, 1/0). Raises UsageError naming the bad text and why."""
    fields = {a: config_defaults(a) for a in algorithms}
    out: dict[str, dict] = {a: {} for a in algorithms}
    for text in assignments:
        key, sep, value = text.partition("=")
        scope, _, field = key.strip().rpartition(".")
        if not sep or not field:
            raise UsageError(f"--set expects [ALGORITHM.]FIELD=VALUE, got {text!r}")
        if scope and scope not in fields:
            check_algorithm(scope)
            raise UsageError(f"--set {text}: {scope} is not among the selected algorithms ({', '.join(algorithms)})")
        targets = [scope] if scope else [a for a in algorithms if field in fields[a]]
        if not targets or field not in fields[targets[0]]:
            known = sorted({f for a in ([scope] if scope else algorithms) for f in fields[a]})
            close = difflib.get_close_matches(field, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; valid fields: {', '.join(known)}"
            owner = scope or "any selected algorithm"
            raise UsageError(f"--set {text}: {owner} has no config field {field!r}{hint}")
        for a in targets:
            out[a][field] = _convert(value.strip(), fields[a][field], f"--set {text}: {a}.{field}")
    return out


def parse_sweep(assignments: list[str], algorithms: list[str]) -> dict[str, list[tuple[str, dict]]]:
    """``--set`` texts whose values may be comma-separated lists (``lr=1e-4,5e-4``) -> for each algorithm
    the points of its grid: (the point's name, its typed overrides). Only the swept fields that reach an
    algorithm span its grid; the name joins their ``FIELD-VALUE`` ("" where no swept field reaches it, so
    single values behave as ``parse_assignments``). Every value is checked before any point is built."""
    fixed, swept = [], []  # swept: (key as typed, [(value text, {algorithm: overrides})])
    for text in assignments:
        key, sep, value = text.partition("=")
        values = list(dict.fromkeys(v.strip() for v in value.split(",")))
        if not sep or len(values) == 1:
            fixed.append(text)
            continue
        if "" in values:
            raise UsageError(f"--set {text}: a list of values has an empty entry")
        swept.append((key.strip(), [(v, parse_assignments([f"{key}={v}"], algorithms)) for v in values]))
    base = parse_assignments(fixed, algorithms)
    grids: dict[str, list[tuple[str, dict]]] = {}
    for algorithm in algorithms:
        axes = [(key, [(v, parsed[algorithm]) for v, parsed in values]) for key, values in swept
                if values[0][1][algorithm]]
        grids[algorithm] = [("_".join(f"{key.rpartition('.')[2]}-{v}" for (key, _), (v, _) in zip(axes, point)),
                             {**base[algorithm], **{k: x for _, over in point for k, x in over.items()}})
                            for point in itertools.product(*(values for _, values in axes))]
    return grids


def _convert(value: str, default, what: str):
    kind = type(default)
    if kind is bool:
        if value.lower() not in TRUE + FALSE:
            raise UsageError(f"{what} is true or false, got {value!r}")
        return value.lower() in TRUE
    try:
        return kind(value)
    except ValueError:
        raise UsageError(f"{what} must be {'an integer' if kind is int else 'a number' if kind is float else kind.__name__}, "
                         f"got {value!r}") from None
