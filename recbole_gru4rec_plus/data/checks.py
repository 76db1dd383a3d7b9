"""The dataset's files, and the data prepared from them, checked before training.

RecBole reads whatever it is given: an empty file, a header without rows, a comma-separated
file read as tab-separated, or a time that is not a number end in a traceback from deep inside
pandas or RecBole, and duplicated rows silently count twice. Each problem here is one
``PluginError`` naming the file (and line), what is wrong and what to do.
"""

import os
from logging import getLogger

import numpy as np
import pandas as pd

from ..errors import PluginError

FEATURE_TYPES = ("token", "token_seq", "float", "float_seq")  # RecBole's atomic-file column types
_OTHER_SEPARATORS = {",": "comma", ";": "semicolon", "|": "bar", " ": "space"}


def atomic_inter_files(config):
    """The ``.inter`` files RecBole will read for this config (one, or the benchmark files)."""
    suffixes = config["benchmark_filename"] or [None]
    return [os.path.join(config["data_path"], ".".join(filter(None, (config["dataset"], s, "inter")))) for s in suffixes]


def check_atomic_files(config):
    """Every ``.inter`` file exists, has a header of ``name:type`` columns split by the configured
    separator and at least one row, and its time column holds numbers."""
    paths = atomic_inter_files(config)
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise PluginError(
            f"dataset '{config['dataset']}' not found: expected {', '.join(missing)}; put RecBole atomic files "
            f"there, or point --data_path at the folder that holds the '{config['dataset']}' folder"
        )
    for path in paths:
        columns = check_atomic_file(path, config["field_separator"], config["encoding"] or "utf-8")
        time_column = next((c for c in columns if c.split(":")[0] == config["TIME_FIELD"]), None)
        if time_column is not None and time_column.endswith(":float"):
            check_numeric_column(path, time_column, config["field_separator"], config["encoding"] or "utf-8")


def check_atomic_file(path, separator, encoding="utf-8"):
    """Header and first row of one atomic file; returns the header's columns."""
    try:
        with open(path, encoding=encoding) as f:
            header, first_row = f.readline(), f.readline()
    except UnicodeDecodeError:
        raise PluginError(f"'{path}' is not {encoding} text: convert it, or set encoding") from None
    if not header.strip():
        raise PluginError(f"'{path}' is empty: an atomic file starts with a header of name:type columns "
                          f"(e.g. user_id:token{separator!r}item_id:token), then one row per event")
    columns = header.rstrip("\r\n").split(separator)
    if len(columns) == 1:
        found = [name for mark, name in _OTHER_SEPARATORS.items() if mark in header and mark != separator]
        guess = f" (its header has {found[0]}s)" if found else ""
        raise PluginError(f"'{path}' has one column only: columns are split by {separator!r}{guess}; "
                          f"set field_separator to the file's separator or convert the file")
    for column in columns:
        name, _, kind = column.partition(":")
        if not name or kind not in FEATURE_TYPES:
            raise PluginError(f"'{path}': header column '{column}' is not name:type with a type among "
                              f"{', '.join(FEATURE_TYPES)}: fix the header")
    if not first_row.strip():
        raise PluginError(f"'{path}' has a header but no rows: give a file with data")
    return columns


def check_numeric_column(path, column, separator, encoding="utf-8"):
    """A float column (the time) holds finite numbers on every row: else the first bad line."""
    try:
        values = pd.read_csv(path, sep=separator, usecols=[column], dtype={column: np.float64}, encoding=encoding,
                             engine="c")[column].to_numpy()
        bad = ~np.isfinite(values)
    except ValueError:  # text in the column: find where
        raw = pd.read_csv(path, sep=separator, usecols=[column], dtype=str, keep_default_na=False, encoding=encoding,
                          engine="c")[column]
        bad = ~np.isfinite(pd.to_numeric(raw, errors="coerce").to_numpy(np.float64))
        values = raw.to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise PluginError(f"'{path}': {column.split(':')[0]} on line {row + 2} is {values[row]!r}, not a number: "
                          f"every event needs a numeric time (fix or drop that row)")


def exact_duplicate_rows(frame, chunk=1 << 20):
    """``frame.duplicated()`` (every later copy of an earlier row), in a fraction of its memory:
    rows are screened by a 64-bit hash of all columns (computed ``chunk`` rows at a time), hashes
    that repeat are found by sorting, and only their rows are compared exactly. (pandas'
    duplicated() factorizes every column into int64 codes at once, 1.5 GB more for 25M ratings;
    hashing whole columns and a hash table of 25M hashes were ~1 GB.)"""
    if frame.empty:
        return np.zeros(0, dtype=bool)
    hashes = np.empty(len(frame), dtype=np.uint64)
    for start in range(0, len(frame), chunk):
        part = frame.iloc[start:start + chunk]
        mixed = np.zeros(len(part), dtype=np.uint64)
        for column in part.columns:
            mixed *= np.uint64(1_000_003)
            mixed ^= pd.util.hash_pandas_object(part[column], index=False).to_numpy()
        hashes[start:start + len(part)] = mixed
    ordered = np.sort(hashes)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered
    candidates = np.zeros(len(frame), dtype=bool)
    if len(repeated):
        for start in range(0, len(frame), chunk):
            part = hashes[start:start + chunk]
            candidates[start:start + chunk] = repeated[np.minimum(np.searchsorted(repeated, part), len(repeated) - 1)] == part
    del hashes
    candidates = np.flatnonzero(candidates)
    duplicated = np.zeros(len(frame), dtype=bool)
    if len(candidates):
        duplicated[candidates] = frame.iloc[candidates].duplicated().to_numpy()
    return duplicated


class DuplicateRowsMixin:
    """Counts exact duplicate rows of the interactions (a warning: they count twice as events and
    targets) and drops them when ``drop_duplicate_rows`` is set, before RecBole's own
    ``rm_dup_inter`` (which removes repeated user-item pairs, a different thing)."""

    def _remove_duplication(self):
        duplicated = exact_duplicate_rows(self.inter_feat)
        n_duplicated = int(duplicated.sum())
        if n_duplicated:
            if self.config["drop_duplicate_rows"]:
                self.inter_feat = self.inter_feat[~duplicated].reset_index(drop=True)
                getLogger().warning(f"dropped {n_duplicated} exact duplicate rows of the interactions (drop_duplicate_rows)")
            else:
                getLogger().warning(
                    f"the interactions hold {n_duplicated} exact duplicate rows (all columns equal): they count "
                    f"twice as events and targets; set drop_duplicate_rows: True to drop them")
        super()._remove_duplication()


def check_prepared_data(config, dataset, train_data):
    """Enough left after filtering and splitting to train and rank: two items, a training target,
    and ``topk`` no larger than the number of items."""
    n_items = dataset.item_num - 1  # RecBole counts the padding item
    if n_items < 2:
        raise PluginError(f"dataset '{config['dataset']}' has {n_items} item(s) after filtering: ranking needs at least "
                          f"2; loosen item_inter_num_interval / user_inter_num_interval or use more data")
    sessions = getattr(train_data, "sessions", None)
    n_targets = sessions.n_targets if sessions is not None else len(train_data.dataset)
    if n_targets == 0:
        raise PluginError(f"dataset '{config['dataset']}' leaves no training target after filtering and splitting: "
                          f"users (or sessions) need at least 3 events for leave-one-out; loosen the filters")
    topk = config["topk"] if isinstance(config["topk"], (list, tuple)) else [config["topk"]]
    if max(topk) > n_items:
        raise PluginError(f"topk={config['topk']} asks for more items than the dataset has ({n_items}): lower topk")
