"""Reading training data and splitting it without leakage.

Local CSV, JSONL/JSON and parquet files load through `datasets`; anything else is taken as
a hub data set name (which needs a reachable hub). Every problem a user can fix (a missing
column, empty data, non-string text) is reported before training starts.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mindwell.errors import MindwellError

_FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json",
            ".parquet": "parquet"}
VALIDATION_NAMES = {"val", "valid", "validation", "dev", "eval"}


def _resolve(source: str, recipe_dir: Path | None) -> str:
    """``source`` as the recipe means it: a path that exists from the working directory is
    kept; otherwise one that exists beside the recipe file is taken from there."""
    path = Path(source).expanduser()
    if path.is_absolute() or path.exists() or recipe_dir is None:
        return source
    beside = Path(recipe_dir) / path
    return os.path.normpath(beside) if beside.exists() else source


def resolve_recipe_paths(recipe, recipe_dir: Path) -> None:
    """Resolve ``data``, ``eval_data``, ``data_script``, ``init_adapter`` and
    ``behaviour_prompts`` against the working directory, then the recipe's folder, so a
    recipe runs from any directory."""
    recipe._recipe_dir = Path(recipe_dir)
    if isinstance(recipe.data, str):
        recipe.data = _resolve(recipe.data, recipe_dir)
    else:
        recipe.data = [_resolve(one, recipe_dir) for one in recipe.data]
    if recipe.eval_data:
        recipe.eval_data = _resolve(recipe.eval_data, recipe_dir)
    if recipe.data_script:
        recipe.data_script = _resolve(recipe.data_script, recipe_dir)
    if recipe.init_adapter:
        recipe.init_adapter = _resolve(recipe.init_adapter, recipe_dir)
    if getattr(recipe, "behaviour_prompts", None):
        recipe.behaviour_prompts = _resolve(recipe.behaviour_prompts, recipe_dir)


def is_hub_name(source: str) -> bool:
    """A hub data set name, not a local file: no file suffix and no path prefix."""
    path = Path(source)
    return path.suffix.lower() not in _FORMATS and not source.startswith((".", "/", "~")) \
        and not path.expanduser().exists()


@dataclass
class MissingData:
    source: str
    message: str
    hint: str


def missing_data(recipe) -> list[MissingData]:
    """Every local data file of a recipe that does not exist, with where it was looked for
    and how to get it."""
    sources = [recipe.data] if isinstance(recipe.data, str) else list(recipe.data)
    sources += [recipe.eval_data] if recipe.eval_data else []
    recipe_dir = getattr(recipe, "_recipe_dir", None)
    missing = []
    for source in sources:
        if is_hub_name(source) or Path(source).expanduser().exists():
            continue
        places = [Path(os.path.abspath(Path(source).expanduser()))]
        if recipe_dir is not None and not Path(source).is_absolute():
            places.append(Path(os.path.abspath(Path(recipe_dir) / source)))
        looked = " and ".join(str(p) for p in dict.fromkeys(places))
        script = recipe.data_script
        if script and Path(script).expanduser().exists():
            hint = f"It is built by a script: run `python {script}`, then try again."
        elif script:
            hint = (f"It is built by {script}, which is not there either: run that script from "
                    "the repository the recipe comes from.")
        else:
            hint = ("Fix `data`/`eval_data` (a relative path is looked up in the working "
                    "directory, then in the recipe's folder) or put the file there.")
        missing.append(MissingData(source, f"Data file not found: {source} (looked for "
                                           f"{looked}).", hint))
    return missing


def require_data(recipe) -> None:
    """Fail before anything loads when a recipe's data file is missing."""
    missing = missing_data(recipe)
    if missing:
        first = missing[0]
        more = f" ({len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise MindwellError(first.message + more, first.hint)


def data_name(source: str | list[str]) -> str:
    """How error messages name a recipe's data (one source or a list of files)."""
    return source if isinstance(source, str) else " + ".join(source)


def load_table(source: str | list[str], split: str | None = None):
    """A `datasets.Dataset` from a local file or a hub data set name, or one table from a
    list of them (e.g. a corpus kept as one file per language)."""
    import datasets

    if not isinstance(source, str):
        if not source:
            raise MindwellError("`data` is an empty list.", "Name at least one data file.")
        tables = [load_table(one, split) for one in source]
        try:
            return datasets.concatenate_datasets(tables)
        except ValueError as err:
            raise MindwellError(
                f"The data files {data_name(source)} cannot be read as one table: {err}",
                "Give every file the same columns (and the same types in them).",
            ) from err

    datasets.disable_progress_bars()
    path = Path(source).expanduser()
    try:
        if path.exists():
            builder = _FORMATS.get(path.suffix.lower())
            if builder is None:
                raise MindwellError(
                    f"Cannot read {path}: unknown file type '{path.suffix}'.",
                    "Use CSV, TSV, JSONL, JSON or parquet.",
                )
            kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
            table = datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
        elif path.suffix.lower() in _FORMATS or source.startswith((".", "/", "~")):
            raise MindwellError(f"Data file not found: {path}", "Check the path in `data`.")
        else:
            table = datasets.load_dataset(source, split=split or "train")
            split = None  # already applied by the hub loader
    except MindwellError:
        raise
    except Exception as err:  # datasets raises many types for unreadable files
        raise MindwellError(
            f"Cannot read the data '{source}': {type(err).__name__}: {str(err)[:300]}",
            "Check that the file is valid CSV/JSONL/parquet, or that the hub is reachable "
            "for a hub data set name.",
        ) from err
    if len(table) == 0:
        raise MindwellError(f"The data '{source}' has no rows.", "Point `data` at a non-empty "
                            "file.")
    return table


def require_columns(table, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise MindwellError(
            f"The data '{source}' has no column(s) {', '.join(missing)}.",
            f"Columns found: {', '.join(table.column_names)}. Set the recipe's column names "
            "to match.",
        )


def require_strings(table, column: str, source: str) -> None:
    for index, value in enumerate(table[column]):
        if not isinstance(value, str):
            raise MindwellError(
                f"Row {index} of '{source}' has a {type(value).__name__} in the text column "
                f"'{column}', not a string.",
                "Clean the data (empty cells in CSV load as None) or choose another column.",
            )


def split_rows(
    table,
    validation_fraction: float,
    seed: int,
    split_column: str | None = None,
    train_value: str | None = None,
    group_column: str | None = None,
    stratify_column: str | None = None,
):
    """(train, validation) tables. A split column is honoured as is; otherwise rows are
    split by group, so every row of a group (e.g. all answers to one question) lands on the
    same side and no question leaks from training into validation. Without groups, a
    stratify column (the label, for classification) keeps class proportions alike."""
    if split_column:
        values = [str(v).lower() for v in table[split_column]]
        train_name = (train_value or "train").lower()
        train_idx = [i for i, v in enumerate(values) if v == train_name]
        val_idx = [i for i, v in enumerate(values) if v in VALIDATION_NAMES]
        if not train_idx:
            raise MindwellError(
                f"No row has {split_column} = '{train_name}'.",
                f"Values found: {', '.join(sorted(set(values)))}.",
            )
        # Rows marked test are never used for training or model selection.
        return table.select(train_idx), table.select(val_idx) if val_idx else None
    if validation_fraction <= 0:
        return table, None
    if group_column:
        groups = sorted({str(g) for g in table[group_column]})
        random.Random(seed).shuffle(groups)
        held = set(groups[: max(1, round(len(groups) * validation_fraction))])
        keys = [str(g) for g in table[group_column]]
        val_idx = [i for i, g in enumerate(keys) if g in held]
        train_idx = [i for i, g in enumerate(keys) if g not in held]
    else:
        strata: dict[str, list[int]] = {}
        keys = table[stratify_column] if stratify_column else [""] * len(table)
        for index, key in enumerate(keys):
            strata.setdefault(str(key), []).append(index)
        rng = random.Random(seed)
        val_idx, train_idx = [], []
        for key in sorted(strata):
            order = strata[key]
            rng.shuffle(order)
            cut = round(len(order) * validation_fraction)
            val_idx += order[:cut]
            train_idx += order[cut:]
        if not val_idx:
            val_idx, train_idx = train_idx[:1], train_idx[1:]
        val_idx, train_idx = sorted(val_idx), sorted(train_idx)
    if not train_idx:
        raise MindwellError("Too little data: nothing left for training after the split.")
    return table.select(train_idx), table.select(val_idx)


def _cap(table, limit: int | None, seed: int, shuffle: bool):
    if table is None or not limit:
        return table
    if shuffle:
        table = table.shuffle(seed=seed)
    return table.select(range(min(limit, len(table))))


# Which original row a mixed-in row copies: copies of one row share a split, so an
# upsampled row never sits in training and validation at once.
_MIX_ROW = "__mindwell_mix_row"


def sample_rows(size: int, weight: float, seed: int) -> list[int]:
    """Row indices for one source sampled to ``weight`` x ``size`` rows: whole copies for
    the integer part of the weight, then a seeded subset for the rest."""
    rng = random.Random(seed)
    wanted = max(1, round(weight * size))
    copies, rest = divmod(wanted, size)
    return sorted(list(range(size)) * copies + rng.sample(range(size), rest))


def mixed_table(recipe, used: list | None = None):
    """The recipe's data as one table, each source sampled by ``data_weights`` (when set);
    ``used`` receives each source's rows in the mix, in order. Copies carry their original row's key
    in a column the split groups by (when the recipe names no group or split column)."""
    import datasets

    if not recipe.data_weights:
        return load_table(recipe.data)
    sources = [recipe.data] if isinstance(recipe.data, str) else list(recipe.data)
    tables = []
    for index, (source, weight) in enumerate(zip(sources, recipe.data_weights, strict=True)):
        table = load_table(source)
        # One seed per source, so reordering the other sources does not change this sample.
        rows = sample_rows(len(table), weight, recipe.seed + index)
        if used is not None:
            used.append({"source": source, "weight": weight, "rows": len(rows),
                         "of": len(table)})
        tables.append(table.select(rows).add_column(_MIX_ROW, [f"{index}:{r}" for r in rows]))
    try:
        return datasets.concatenate_datasets(tables)
    except ValueError as err:
        raise MindwellError(
            f"The data files {data_name(recipe.data)} cannot be read as one table: {err}",
            "Give every file the same columns (and the same types in them).",
        ) from err


def recipe_tables(recipe, check: Callable | None = None, stratify_column: str | None = None,
                  shuffle_caps: bool = False, mix: list | None = None):
    """(whole table, train rows, validation rows or None) as a recipe asks for them.

    ``check(table, source)`` validates each loaded file before it is split or capped. The
    validation rows come from ``eval_data`` when given, else from the split. With
    ``data_weights`` the sources are mixed before the split; ``mix`` receives what each
    contributed.
    """
    require_data(recipe)
    table = mixed_table(recipe, mix)
    if check:
        check(table, data_name(recipe.data))
    group = recipe.group_column or (_MIX_ROW if _MIX_ROW in table.column_names else None)
    train_rows, eval_rows = split_rows(
        table, recipe.validation_fraction if not recipe.eval_data else 0.0, recipe.seed,
        recipe.split_column, recipe.data_split, group, stratify_column,
    )
    if _MIX_ROW in table.column_names:
        table, train_rows = table.remove_columns(_MIX_ROW), train_rows.remove_columns(_MIX_ROW)
        eval_rows = eval_rows.remove_columns(_MIX_ROW) if eval_rows is not None else None
    if recipe.eval_data:
        eval_rows = load_table(recipe.eval_data)
        if check:
            check(eval_rows, recipe.eval_data)
    return (
        table,
        _cap(train_rows, recipe.max_train_samples, recipe.seed, shuffle_caps),
        _cap(eval_rows, recipe.max_eval_samples, recipe.seed, shuffle_caps),
    )
