"""Session datasets in, RecBole benchmark files out: the evaluation protocol of the GRU4Rec papers.

Readers turn a raw log into one frame with the columns ``session_id``, ``item_id`` (a string
token) and ``timestamp`` (float seconds). The protocol steps (docs/algorithm.md §8) each take and return
such a frame: collapse repeats, iterative support filter, time split (sessions that start in the
last D days), removal of test items unseen in training. ``write_benchmark_files`` writes one
prefix row per target (every event after the first of a session) in RecBole's pre-split
``NAME.{train,valid,test}.inter`` layout, so that every sequential RecBole model, built-in or
plugin, is evaluated on every next event of the test sessions.

Plain numpy/pandas on purpose: an importer never touches torch.
"""

import ctypes
import itertools
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .. import faults
from ..errors import PluginError
from ..resources import PROPERTIES_DIR
from .sessions import first_event_of_session, session_starts
from .text_rows import History, Value, text_rows

COLUMNS = ["session_id", "item_id", "timestamp"]
SPLITS = ("train", "valid", "test")
DAY = 86400.0
# strings that pandas (and so RecBole's loader) reads as missing values
NA_TOKENS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
             "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
# timestamp_list: the history's times, so that dwell-time slicing knows a session's first dwell
HEADER = "session_id:token\titem_id_list:token_seq\titem_id:token\ttimestamp:float\ttimestamp_list:float_seq\n"
EVENT_HEADER = "session_id:token\titem_id:token\ttimestamp:float\n"


# --------------------------------------------------------------------------- readers


def _read_csv(path, sep, what, **options):
    """The whole file as strings (ids stay tokens exactly as written: no lost leading zeros)."""
    if not os.path.isfile(path):
        raise PluginError(f"input file '{path}' does not exist: check the path")
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, **options)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise PluginError(f"cannot read '{path}' as {what}: {str(error).splitlines()[0]}") from None
    return frame


def _require_columns(frame, path, names, what, allow_empty=False):
    missing = [name for name in names if name not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "nothing"
        raise PluginError(f"'{path}' lacks the column(s) {', '.join(missing)} of {what} (header has {found}): "
                          f"fix the header or pick the right --format")
    if frame.empty and not allow_empty:
        raise PluginError(f"'{path}' has a header but no events: give a file with data")


def _numeric(values, path, column):
    """Float values of a column; a one-line error naming the first bad row otherwise."""
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    bad = ~np.isfinite(numbers.to_numpy())
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise PluginError(f"'{path}': {column} '{values.iloc[row]}' on data line {row + 1} is not a number: "
                          f"times must be numeric")
    return numbers


def _session_ids(values):
    """int64 when every id is an integer (natural order), strings otherwise; a categorical's
    distinct ids are checked, not its events."""
    integer = r"-?\d{1,18}"
    if isinstance(values.dtype, pd.CategoricalDtype):
        distinct = values.cat.categories.astype(str)
        if not distinct.str.fullmatch(integer).all():
            return values
        return pd.Series(distinct.astype(np.int64).to_numpy()[values.cat.codes.to_numpy()], index=values.index)
    return values.astype(np.int64) if values.str.fullmatch(integer).all() else values


def _check_tokens(frame, path):
    for column in ("session_id", "item_id"):
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            blank = np.flatnonzero(values.cat.categories.astype(str).str.strip() == "")
            empty = np.isin(values.cat.codes.to_numpy(), blank) if len(blank) else None
        else:
            empty = (values.astype(str).str.strip() == "").to_numpy()
        if empty is not None and empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise PluginError(f"'{path}': empty {column} on data line {row + 1}: every event needs a session and an item")


def _lean_tokens(values):
    """A categorical column with its categories stripped of surrounding spaces (merged where
    stripping makes two equal): one string per distinct id, not one per event."""
    categories = values.cat.categories.astype(str)
    stripped = categories.str.strip()
    if stripped.equals(categories):
        return values.cat.rename_categories(categories)
    unique, inverse = np.unique(stripped.to_numpy(), return_inverse=True)
    codes = values.cat.codes.to_numpy()
    return pd.Series(pd.Categorical.from_codes(np.where(codes < 0, -1, inverse[codes]), unique), index=values.index)


def read_gru4rec_tsv(path):
    """A tab-separated ``SessionId ItemId Time`` file (the GRU4Rec code's format; Time in seconds).

    Read by pandas' C parser with ids as categoricals and times as floats: RSC15's 31.7M clicks in
    well under a minute and about 1 GB. A file that does not parse that way (a time that is not a
    number, ...) is read again as strings, to name the first bad line.
    """
    columns = ["SessionId", "ItemId", "Time"]
    header = _read_csv(path, "\t", "tab-separated SessionId/ItemId/Time", nrows=0)
    _require_columns(header, path, columns, "the GRU4Rec format", allow_empty=True)
    try:
        raw = pd.read_csv(path, sep="\t", usecols=columns, dtype={"SessionId": "category", "ItemId": "category",
                                                                  "Time": np.float64}, keep_default_na=False, engine="c")
        if not np.isfinite(raw["Time"].to_numpy()).all():
            raise ValueError("a time that is not finite")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        raw = _read_csv(path, "\t", "tab-separated SessionId/ItemId/Time")
        _require_columns(raw, path, columns, "the GRU4Rec format")
        times = _numeric(raw["Time"], path, "Time")  # names the bad line, if a time is the problem
        raw = raw.astype({"SessionId": "category", "ItemId": "category"}).assign(Time=times)
    _require_columns(raw, path, columns, "the GRU4Rec format")
    events = pd.DataFrame({"session_id": _lean_tokens(raw["SessionId"]), "item_id": _lean_tokens(raw["ItemId"]),
                           "timestamp": raw["Time"].to_numpy(np.float64)})
    _check_tokens(events, path)
    events["session_id"] = _session_ids(events["session_id"])
    return events


def read_diginetica(path):
    """DIGINETICA's ``train-item-views.csv``: time = ``eventdate`` (UTC day) + ``timeframe`` (ms into the session)."""
    raw = _read_csv(path, ";", "';'-separated DIGINETICA item views")
    _require_columns(raw, path, ["session_id", "item_id", "timeframe", "eventdate"], "DIGINETICA item views")
    day = pd.to_datetime(raw["eventdate"], format="%Y-%m-%d", errors="coerce")
    if day.isna().any():
        row = int(np.flatnonzero(day.isna().to_numpy())[0])
        raise PluginError(f"'{path}': eventdate '{raw['eventdate'].iloc[row]}' on data line {row + 1} is not a "
                          f"YYYY-MM-DD date: is this the DIGINETICA train-item-views file?")
    day_seconds = (day - pd.Timestamp("1970-01-01")).dt.total_seconds().to_numpy()
    offset = _numeric(raw["timeframe"], path, "timeframe").to_numpy() / 1000.0
    events = pd.DataFrame({"session_id": raw["session_id"].str.strip(), "item_id": raw["item_id"].str.strip(),
                           "timestamp": day_seconds + offset})
    _check_tokens(events, path)
    events["session_id"] = _session_ids(events["session_id"])
    return events


READERS = {"gru4rec": read_gru4rec_tsv, "diginetica": read_diginetica}


# --------------------------------------------------------------------------- protocol steps


def sort_events(events):
    """Events of a session together and in time order (stable: ties keep the file's order)."""
    return events.sort_values(["session_id", "timestamp"], kind="mergesort").reset_index(drop=True)


def collapse_repeats(events):
    """Drop an event that repeats the previous item of its session (keep the first of a run)."""
    events = sort_events(events)
    repeat = (events["session_id"] == events["session_id"].shift()) & (events["item_id"] == events["item_id"].shift())
    return events[~repeat.to_numpy()].reset_index(drop=True)


def value_counts_per_row(values):
    """For each row, how many rows hold its value (ints, strings or a categorical's codes)."""
    codes, _ = pd.factorize(values)
    return np.bincount(codes)[codes]


def filter_support(events, min_item_support=5, min_session_length=2):
    """Drop rare items and short sessions, again and again until neither drops anything.

    One pass is not enough: removing a rare item can shorten a session below the minimum, and
    removing that session can make another item rare.
    """
    while True:
        events = events[value_counts_per_row(events["item_id"]) >= min_item_support]
        keep = value_counts_per_row(events["session_id"]) >= min_session_length
        if keep.all():
            return events.reset_index(drop=True)
        events = events[keep]


def session_start_times(events):
    """Start time (first event) of every session."""
    return events.groupby("session_id", sort=False, observed=True)["timestamp"].min()


def session_start_per_row(events):
    """Start time of each row's session."""
    return events.groupby("session_id", sort=False, observed=True)["timestamp"].transform("min").to_numpy()


def split_by_time(events, days):
    """(before, last): the sessions that start in the last ``days`` days of the data go to ``last``."""
    starts = session_start_times(events)
    cutoff = events["timestamp"].max() - days * DAY
    late = events["session_id"].isin(starts.index[starts.to_numpy() >= cutoff]).to_numpy()
    return events[~late].reset_index(drop=True), events[late].reset_index(drop=True)


def drop_unseen_items(events, train, min_session_length=2):
    """Keep the events whose item is in ``train``, then the sessions still long enough (2: one target)."""
    events = events[events["item_id"].isin(train["item_id"].unique()).to_numpy()]
    return events[value_counts_per_row(events["session_id"]) >= min_session_length].reset_index(drop=True)


def as_tokens(values):
    """Item ids as string tokens, held as a categorical (one string per distinct id)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.rename_categories(values.cat.categories.astype(str))
    return values.astype(str).astype("category")


def _prepare(events, collapse, what):
    missing = [c for c in COLUMNS if c not in events.columns]
    if missing:
        raise PluginError(f"{what} events lack the column(s) {', '.join(missing)}: pass a frame from a read_* function")
    events = events[COLUMNS].copy()
    events["item_id"] = as_tokens(events["item_id"])
    events["timestamp"] = events["timestamp"].astype(np.float64)
    events = sort_events(events)
    return collapse_repeats(events) if collapse else events


def _check_not_empty(frame, message):
    if frame.empty:
        raise PluginError(message)


def _split_validation(train, valid_days, test):
    """Validation sessions from the end of training (or the test set itself when valid_days is 0)."""
    if valid_days < 0:
        raise PluginError(f"--valid-days must be 0 or positive, got {valid_days}")
    if valid_days == 0:
        return train, test.copy()
    train, valid = split_by_time(train, valid_days)
    _check_not_empty(valid, f"no training session starts in the last {valid_days:g} day(s) before the test period: "
                            f"raise --valid-days (or 0 for no validation split)")
    _check_not_empty(train, f"every training session starts in the last {valid_days:g} day(s): "
                            f"lower --valid-days (or 0 for no validation split)")
    valid = drop_unseen_items(valid, train)
    _check_not_empty(valid, "no validation session keeps 2 events of items seen in training: "
                            "change --valid-days (or 0 for no validation split)")
    return train, valid


def apply_session_protocol(events, test_days, valid_days=None, min_item_support=5, min_session_length=2,
                           collapse_repeats=False):
    """One event log -> dict(train, valid, test) by the GRU4Rec papers' protocol.

    ``valid_days`` None means the same as ``test_days``; 0 means no validation split: the test
    set is validation too.
    """
    if not test_days > 0:
        raise PluginError(f"--test-days must be positive, got {test_days}")
    valid_days = test_days if valid_days is None else valid_days
    events = filter_support(_prepare(events, collapse_repeats, "input"), min_item_support, min_session_length)
    _check_not_empty(events, f"no events left after dropping items with < {min_item_support} events and sessions "
                             f"with < {min_session_length} events: lower --min-item-support or use more data")
    train, test = split_by_time(events, test_days)
    _check_not_empty(train, f"every session starts in the last {test_days:g} day(s) of the data: lower --test-days")
    train, valid = _split_validation(train, valid_days, test)
    test = drop_unseen_items(test, train)
    _check_not_empty(test, f"no test session (started in the last {test_days:g} day(s)) keeps 2 events of items "
                           f"seen in training: raise --test-days")
    if valid_days == 0:
        valid = test.copy()
    return {"train": train, "valid": valid, "test": test}


def apply_presplit_protocol(train, test, valid_days=1, min_item_support=5, min_session_length=2,
                            collapse_repeats=False):
    """Already-split train and test logs -> dict(train, valid, test).

    The support filter runs on the training log only (the test log is judged by what training
    holds); validation is split off the end of training by time, as for one file.
    """
    train = filter_support(_prepare(train, collapse_repeats, "training"), min_item_support, min_session_length)
    _check_not_empty(train, f"no training events left after dropping items with < {min_item_support} events and "
                            f"sessions with < {min_session_length} events: lower --min-item-support")
    test = _prepare(test, collapse_repeats, "test")
    shared = np.intersect1d(pd.Series(train["session_id"].unique()).astype(str), pd.Series(test["session_id"].unique()).astype(str))
    if len(shared):
        raise PluginError(f"{len(shared)} session id(s) (e.g. '{shared[0]}') are in both the training and the test "
                          f"file: a session must be in one of them")
    train, valid = _split_validation(train, valid_days, test)
    test = drop_unseen_items(test, train)
    _check_not_empty(test, "no test session keeps 2 events of items seen in training: check that the two files "
                           "come from the same data set")
    if valid_days == 0:
        valid = test.copy()
    return {"train": train, "valid": valid, "test": test}


def split_summary(splits):
    """events, (users,) sessions, items and targets (events - sessions) of each split."""
    def summary(frame):
        users = {"users": int(frame["user_id"].nunique())} if "user_id" in frame else {}
        sessions = int(frame["session_id"].nunique())
        return {"events": len(frame), **users, "sessions": sessions, "items": int(frame["item_id"].nunique()),
                "targets": len(frame) - sessions}
    return {name: summary(frame) for name, frame in splits.items() if name in SPLITS}


# --------------------------------------------------------------------------- writers


def _ordered_sessions(frame):
    """Events grouped by session, sessions by start time, events in time order."""
    frame = sort_events(frame)
    order = np.lexsort((np.arange(len(frame)), session_start_per_row(frame)))  # stable within equal starts
    return frame.iloc[order].reset_index(drop=True)


def tokens_of(values):
    """A column's tokens for the writer: a categorical as it is (its distinct strings are
    converted once), other columns as numpy arrays."""
    return values.array if isinstance(values.dtype, pd.CategoricalDtype) else values.to_numpy()


def prefix_rows(frame, max_history=50):
    """Bytes of one ``.inter`` file (in chunks): a row per target with the session's previous
    items and their times (oldest first, the last ``max_history``)."""
    frame = _ordered_sessions(frame)
    sessions, items, times = (tokens_of(frame[column]) for column in COLUMNS)
    session_first = first_event_of_session(session_starts(pd.factorize(frame["session_id"])[0]))
    rows = np.flatnonzero(session_first != np.arange(len(frame)))  # every event but a session's first
    first = np.maximum(session_first[rows], rows - max_history)
    return text_rows([Value(sessions), History(items), Value(items), Value(times), History(times)], rows, first)


def event_rows(frame):
    """Bytes of one ``.inter`` file of plain events (in chunks): sessions by start time, events in time order."""
    frame = _ordered_sessions(frame)
    return text_rows([Value(tokens_of(frame[column])) for column in COLUMNS], np.arange(len(frame)))


@dataclass(frozen=True)
class Layout:
    """What an import writes: the files' header, their rows ((splits, max_history) -> an iterable
    of bytes per split) and the dataset YAML template under properties/dataset/."""

    header: str
    rows: Callable
    template: str


def session_rows(splits, max_history=50):
    return {split: prefix_rows(splits[split], max_history) for split in SPLITS}


def session_event_rows(splits, max_history=50):
    return {split: event_rows(splits[split]) for split in SPLITS}


SESSION_LAYOUT = Layout(HEADER, session_rows, "sessions.yaml")
# The training events as they are: nothing per target on disk; the rows that a model needs are
# built when RecBole loads the files (docs/algorithm.md §8), for RSC15-sized logs.
EVENT_LAYOUT = Layout(EVENT_HEADER, session_event_rows, "session_events.yaml")
LAYOUTS = {"prefix": SESSION_LAYOUT, "events": EVENT_LAYOUT}


def dataset_yaml(data_path, name, max_history=50, comments=(), template="sessions.yaml"):
    """The imported dataset's YAML: the layout's template plus where the files are."""
    with open(os.path.join(PROPERTIES_DIR, "dataset", template), encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"^MAX_ITEM_LIST_LENGTH:[^#\n]*", f"MAX_ITEM_LIST_LENGTH: {max_history:<10}", text, flags=re.M)
    head = "".join(f"# {line}\n" for line in [f"dataset '{name}': RecBole benchmark files by run/import_sessions.py",
                                               *comments])
    folder = os.path.abspath(data_path)
    return (f"{head}\n{text.rstrip()}\n\n# Where this dataset lives (absolute, so the command runs from any folder).\n"
            f"data_path: {folder!r:<22} # (str) the folder holding {name}/\n")


def check_dataset_name(name):
    """A dataset name becomes a folder and file names: plain characters only."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*", name or ""):
        raise PluginError(f"dataset name '{name}' must be letters, digits, '_', '-' or '.': it becomes a folder and "
                          f"file names")


def _check_writable(splits, name, max_history):
    check_dataset_name(name)
    if max_history < 1:
        raise PluginError(f"max_history must be at least 1, got {max_history}")
    for split in SPLITS:
        if split not in splits or splits[split].empty:
            raise PluginError(f"the {split} split is missing or empty: nothing to write")
        frame = splits[split]
        for column in ("user_id", "session_id", "item_id"):
            if column not in frame:
                continue
            tokens = pd.Series(frame[column].unique()).astype(str)  # each distinct id once
            spaced = tokens.str.contains(r"\s")
            if spaced.any():
                raise PluginError(f"{column} '{tokens[spaced].iloc[0]}' contains whitespace, which separates "
                                  f"tokens in RecBole files: rename such ids")
            missing = tokens.isin(NA_TOKENS)
            if missing.any():
                raise PluginError(f"{column} '{tokens[missing].iloc[0]}' would be read as a missing value by RecBole "
                                  f"(pandas): rename such ids or drop their events")


def _exchange_folders(first, second):
    """Swap two folders in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the
    system or the file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_current_dir, rename_exchange = -100, 2
    return renameat2(at_current_dir, os.fsencode(first), at_current_dir, os.fsencode(second), rename_exchange) == 0


def replace_folder(new, target):
    """Put folder ``new`` where ``target`` is, as a whole: a kill at any moment leaves the old
    ``target`` or the new one, never a mix of their files."""
    if not os.path.exists(target):
        os.rename(new, target)
        return
    stop = faults.should_stop("swap", target)
    if not stop and _exchange_folders(new, target):  # ``new`` now holds the old dataset
        shutil.rmtree(new)
        return
    old = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.old-{secrets.token_hex(3)}")
    os.rename(target, old)  # between these two renames the dataset is only in ``old``
    if stop:
        faults.stop_here()
    os.rename(new, target)
    shutil.rmtree(old)


def _recover_interrupted_import(data_path, name):
    """Clear what a killed import left beside ``NAME``: its half-written new folders, and, had
    the kill fallen between the two renames of ``replace_folder``, put the old dataset back."""
    folder = os.path.join(data_path, name)
    leftovers = sorted(os.listdir(data_path)) if os.path.isdir(data_path) else []
    for entry in leftovers:
        path = os.path.join(data_path, entry)
        if entry.startswith(f".{name}.old-") and not os.path.exists(folder):
            os.rename(path, folder)
        elif entry.startswith((f".{name}.new-", f".{name}.old-")):
            shutil.rmtree(path, ignore_errors=True)


def write_benchmark_files(splits, data_path, name, max_history=50, overwrite=False, comments=(), layout=SESSION_LAYOUT):
    """Write ``data_path/NAME/NAME.{train,valid,test}.inter`` and ``NAME.yaml``; return their paths.

    The files are written into a new folder beside ``NAME``, which then takes its place as a
    whole (``replace_folder``): a failure or a kill leaves the earlier dataset as it was, never a
    new training file beside old test files. An existing dataset is replaced only with
    ``overwrite``, and never when its folder holds files of anything else.
    """
    _check_writable(splits, name, max_history)
    _recover_interrupted_import(data_path, name)
    folder = os.path.join(data_path, name)
    names = [f"{name}.{split}.inter" for split in SPLITS] + [f"{name}.yaml"]
    present = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    if present and not overwrite:
        raise PluginError(f"dataset '{name}' already exists in '{folder}': pass --overwrite to replace it or choose "
                          f"another --name")
    others = [entry for entry in present if entry not in names]
    if others:
        raise PluginError(f"'{folder}' also holds {', '.join(others[:3])}, which an import would not keep: move "
                          f"them elsewhere or choose another --name")
    try:
        os.makedirs(data_path, exist_ok=True)
        staging = tempfile.mkdtemp(dir=data_path, prefix=f".{name}.new-")
    except OSError as error:
        raise PluginError(f"cannot write to --data-path '{data_path}' ({error.strerror or error}): choose a folder "
                          f"you can write to") from None
    try:
        rows = layout.rows(splits, max_history)  # chunks made as they are written: one in memory at a time
        contents = [itertools.chain([layout.header.encode()], rows[split]) for split in SPLITS]
        contents.append([dataset_yaml(data_path, name, max_history, comments, layout.template).encode()])
        for file_name, chunks in zip(names, contents):
            with open(os.path.join(staging, file_name), "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            os.chmod(os.path.join(staging, file_name), 0o644)
        os.chmod(staging, 0o755)
        replace_folder(staging, folder)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    return [os.path.join(folder, file_name) for file_name in names]
