"""Reading, filtering and remapping the interactions without RecBole's whole-frame copies.

RecBole reads atomic files with the Python engine (every token a Python string), filters with
``DataFrame.drop``, which copies every column at once beside the frame it drops from, counts
interactions with ``Counter`` over every row, remaps ids by hashing every token as a string and
converts the frame to tensors while holding both. For 25M interactions that is minutes and
several GB. These mixins read with pandas' C parser (token columns as categoricals), drop rows
and convert one column at a time, count with ``np.bincount`` and remap from the categoricals'
codes, and hand freed memory back to the system between the steps (peak RSS is what limits the
data a machine can take). The rows, ids and tensors are exactly RecBole's.
"""

import ctypes
import ctypes.util
import functools
import os
import tempfile

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals
from recbole.data.interaction import Interaction
from recbole.utils import FeatureType


def release_free_memory():
    """Return the allocator's free pages to the system (glibc's ``malloc_trim``; elsewhere a no-op).

    Freed mid-sized blocks (the parser's chunks, pandas' temporaries) stay in glibc's heap and in
    the process's RSS, so that the next step's arrays add to them: after reading 25M interactions
    that was 0.65 GB."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (looked up once: ``find_library`` runs a subprocess)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc
        return None


def keep_rows(frame, keep):
    """``frame`` with the rows where ``keep`` is True, index reset; built one column at a time
    (each old column is released as its new one is made), not with a copy of the whole frame."""
    kept = {}
    for name in list(frame.columns):
        column = frame.pop(name)
        kept[name] = column.array[keep] if isinstance(column.dtype, pd.CategoricalDtype) else column.to_numpy()[keep]
        del column
    return pd.DataFrame(kept, copy=False)


def _codes(column):
    """Integer codes of a column's values (a categorical's own codes, else factorized)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy()
    return pd.factorize(column)[0]


class FastLoadMixin:
    """Atomic files without sequence fields read by pandas' C parser, token columns as categoricals."""

    def _load_feat(self, filepath, source):
        """Read an atomic file with pandas' C parser, token columns as categoricals.

        RecBole (Dataset._load_feat) reads with the Python engine and every token as a Python
        string: for 25M interactions, minutes and ~10 GB. Here RecBole still parses the header
        (it registers the field types, from a copy holding only the header line), then the rows are
        read fast and lean; tokens keep their string values. Files with sequence fields or a
        multi-character separator go through RecBole's reader unchanged.
        """
        separator, encoding = self.config["field_separator"], self.config["encoding"]
        with open(filepath, encoding=encoding) as f:
            header = f.readline()
        if len(separator) != 1 or "_seq" in header:
            return super()._load_feat(filepath, source)
        with tempfile.TemporaryDirectory() as folder:
            header_only = os.path.join(folder, os.path.basename(filepath))
            with open(header_only, "w", encoding=encoding) as f:
                f.write(header)
            empty = super()._load_feat(header_only, source)
        if empty is None:
            return None
        columns = list(empty.columns)
        names = {field: f"{field}:{self.field2type[field].value}" for field in columns}
        dtype = {names[field]: np.float64 if self.field2type[field] == FeatureType.FLOAT else "category" for field in columns}
        chunks = pd.read_csv(filepath, sep=separator, usecols=list(dtype), dtype=dtype, encoding=encoding, engine="c",
                             chunksize=1 << 20)  # chunks: bounded parser buffers
        pieces = {field: [] for field in columns}
        for chunk in chunks:
            for field in columns:
                pieces[field].append(chunk[names[field]])
        chunk = None  # the last chunk goes with its pieces
        if not pieces[columns[0]]:
            return empty
        frame = {}
        for field in columns:  # one column at a time: its pieces are released as it is made
            parts = pieces.pop(field)
            frame[field] = (union_categoricals(parts) if dtype[names[field]] == "category"
                            else np.concatenate([part.to_numpy() for part in parts]))
            del parts
        frame = pd.DataFrame(frame, copy=False)  # no copy: each column stays its own block
        release_free_memory()
        return frame


class LeanProcessingMixin:
    """RecBole's filters, id remapping and conversion to tensors, with RecBole's results, without
    its whole-frame copies.

    Only the interactions are filtered here; with user or item feature tables (which RecBole
    filters too), RecBole's own methods run."""

    def _has_side_tables(self):
        return getattr(self, "user_feat", None) is not None or getattr(self, "item_feat", None) is not None

    def _filter_nan_user_or_item(self):
        """Drop the interactions without a user or an item id, with RecBole's warning (its file
        lines, the first ten here). RecBole materialises the 25M-entry index to find none, and
        with holes in both fields looks the second field's labels up as positions (IndexError)."""
        if self._has_side_tables():
            return super()._filter_nan_user_or_item()
        keep = np.ones(len(self.inter_feat), dtype=bool)
        for field in (self.uid_field, self.iid_field):
            if field is None or field not in self.inter_feat:
                continue
            missing = self.inter_feat[field].isnull().to_numpy()
            if missing.any():
                lines = np.flatnonzero(missing) + 2  # the header is line 1
                shown = ", ".join(map(str, lines[:10])) + (f" and {len(lines) - 10} more" if len(lines) > 10 else "")
                self.logger.warning(f"In inter_feat, line [{shown}], {field} do not exist, so they will be removed.")
                keep &= ~missing
        self._keep_interactions(keep)

    def _filter_inter_by_user_or_item(self):
        if self._has_side_tables():  # without them there is nothing to filter by (RecBole drops no row, copying all)
            super()._filter_inter_by_user_or_item()

    def _filter_by_field_value(self):
        intervals = self.config["val_interval"] or {}
        if self._has_side_tables() or any(field not in self.inter_feat for field in intervals):
            return super()._filter_by_field_value()
        keep = np.ones(len(self.inter_feat), dtype=bool)
        for field, interval in intervals.items():
            values = self.inter_feat[field]
            if self.field2type[field] in {FeatureType.FLOAT, FeatureType.FLOAT_SEQ}:
                keep &= np.asarray(self._within_intervals(values.to_numpy(), self._parse_intervals_str(interval)))
            else:  # a token field: its listed values
                keep &= values.isin(interval).to_numpy()
        self._keep_interactions(keep)

    def _filter_by_inter_num(self):
        """RecBole's rounds: ban the users and the items whose number of interactions is outside
        its interval, drop their interactions, count again, until nothing is banned."""
        if self.uid_field is None or self.iid_field is None or self._has_side_tables():
            return super()._filter_by_inter_num()
        intervals = [self._parse_intervals_str(self.config[key]) for key in ("user_inter_num_interval", "item_inter_num_interval")]
        if intervals == [None, None]:
            return
        codes = [_codes(self.inter_feat[field]) for field in (self.uid_field, self.iid_field)]
        keep = np.ones(len(self.inter_feat), dtype=bool)  # a mask, not compressed copies of the codes (memory)
        while True:
            dropped = np.zeros(len(keep), dtype=bool)
            for code, interval in zip(codes, intervals):
                if interval is not None:
                    count = np.bincount(code[keep], minlength=code.max(initial=-1) + 1)
                    dropped |= ((count > 0) & ~np.asarray(self._within_intervals(count, interval), dtype=bool))[code]
            dropped &= keep
            if not dropped.any():
                break
            keep &= ~dropped
        del codes, dropped
        self._keep_interactions(keep)

    def _remap(self, remap_list):
        """RecBole's ids (1, 2, ... in order of first appearance over the listed columns; 0 is
        padding) from the categoricals' codes. RecBole concatenates every token as a Python string
        and hashes them (for 25M interactions ~1.7 GB at once); lists, other dtypes and missing
        tokens go through RecBole's ``_remap``."""
        if not remap_list or not all(ftype == FeatureType.TOKEN and isinstance(feat[field].dtype, pd.CategoricalDtype)
                                     and not feat[field].hasnans for feat, field, ftype in remap_list):
            return super()._remap(remap_list)
        local = []  # per column: each row's code in order of appearance, and those codes' tokens
        for feat, field, _ in remap_list:
            codes, seen = pd.factorize(feat[field].cat.codes.to_numpy())
            local.append((codes, feat[field].cat.categories.to_numpy()[seen]))
        first_ids, tokens = pd.factorize(np.concatenate([seen_tokens for _, seen_tokens in local]))
        offset = 0
        for (feat, field, _), (codes, seen_tokens) in zip(remap_list, local):
            ids = first_ids[offset:offset + len(seen_tokens)] + 1
            offset += len(seen_tokens)
            feat[field] = np.take(ids, codes, out=codes)  # in place: each row's code becomes its id
            del codes
        del local
        id_token = np.array(["[PAD]"] + list(tokens))
        token_id = {token: i for i, token in enumerate(id_token)}
        for _, field, _ in remap_list:
            if field not in self.field2id_token:
                self.field2id_token[field] = id_token
                self.field2token_id[field] = token_id
        release_free_memory()

    def _change_feat_format(self):
        """RecBole's DataFrame-to-Interaction conversion one column at a time, each column
        released as its tensor is made (RecBole holds the frame and all its tensors at once)."""
        for feat_name in self.feat_name_list:
            frame = getattr(self, feat_name)
            if not isinstance(frame, pd.DataFrame):
                continue
            tensors = {}
            for name in list(frame.columns):
                tensors.update(self._dataframe_to_interaction(pd.DataFrame({name: frame.pop(name)}, copy=False)).interaction)
            setattr(self, feat_name, Interaction(tensors))
            del frame
            release_free_memory()
        super()._change_feat_format()  # RecBole's steps after the conversion (its conversion finds tensors)

    def _dataframe_to_interaction(self, data):
        return data if isinstance(data, Interaction) else super()._dataframe_to_interaction(data)

    def _keep_interactions(self, keep):
        if not keep.all():
            self.inter_feat = keep_rows(self.inter_feat, keep)
            release_free_memory()
