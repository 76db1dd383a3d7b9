"""Tab-separated rows of RecBole atomic files, written with array operations instead of a Python
loop per row: the importers' output for tens of millions of events in minutes.

A row is a sequence of fields, each either the row's own token of a column (``Value``) or the
tokens of the events ``first .. row - 1`` of a column joined by spaces (``History``: RecBole's
``token_seq`` / ``float_seq`` fields). Events are encoded once per chunk into one byte buffer,
each token followed by a space, so that a history is one contiguous slice of it; a chunk's rows
are then gathered from those slices in one indexing step. Memory stays bounded by ``CHUNK_BYTES``
of output, whatever the number of events.
"""

import numpy as np
import pandas as pd

CHUNK_BYTES = 1 << 24  # output bytes per chunk (about 16 MB; its index arrays are 8x that)
CHUNK_SPAN = 1 << 20  # events a chunk's rows may span (rows of one split lie scattered among all events)


def _char_matrix(strings):
    """(bytes matrix, lengths) of a numpy string array: row k holds the UTF-8 bytes of string k,
    zero-padded. ASCII text is converted as an array; other text goes through ``np.char.encode``."""
    strings = np.asarray(strings).astype(str)
    if strings.dtype.itemsize == 0 or not len(strings):
        return np.zeros((len(strings), 1), dtype=np.uint8), np.zeros(len(strings), dtype=np.int64)
    codes = strings.view(np.uint32).reshape(len(strings), -1)
    if codes.max() < 128:
        return codes.astype(np.uint8), (codes != 0).sum(axis=1)
    encoded = np.char.encode(strings, "utf-8")
    matrix = np.frombuffer(encoded.tobytes(), dtype=np.uint8).reshape(len(encoded), encoded.dtype.itemsize)
    return matrix, np.char.str_len(encoded).astype(np.int64)


class _Column:
    """Tokens of one column, one per event: a numpy array, or a pandas Categorical (its distinct
    strings are converted once, its events gathered by code)."""

    def __init__(self, tokens):
        self.tokens = tokens
        self._dictionary = None

    def char_matrix(self, lo, hi):
        if not isinstance(self.tokens, pd.Categorical):
            return _char_matrix(self.tokens[lo:hi])
        if self._dictionary is None:
            self._dictionary = _char_matrix(np.asarray(self.tokens.categories))
        matrix, lengths = self._dictionary
        codes = self.tokens.codes[lo:hi]
        return matrix[codes], lengths[codes]


class Value(_Column):
    """The row's own token of ``tokens`` (one per event)."""


class History(_Column):
    """The tokens of ``tokens`` of the row's history events joined by spaces."""


def _encode(column, lo, hi):
    """(buffer, starts) of events lo..hi-1: each token's bytes followed by a space; token k is
    ``buffer[starts[k]:starts[k + 1] - 1]``."""
    matrix, lengths = column.char_matrix(lo, hi)
    width = matrix.shape[1]
    padded = np.zeros((len(lengths), width + 1), dtype=np.uint8)
    padded[:, :width] = matrix
    padded[np.arange(len(lengths)), lengths] = ord(" ")
    keep = np.arange(width + 1)[None, :] <= lengths[:, None]
    return padded[keep], np.concatenate(([0], np.cumsum(lengths + 1)))


def _gather(out, out_starts, buffer, starts, lengths):
    """``out[out_starts[r]:+lengths[r]] = buffer[starts[r]:+lengths[r]]`` for every r at once."""
    total = int(lengths.sum())
    if not total:
        return
    shift = np.repeat(np.cumsum(lengths) - lengths, lengths)
    within = np.arange(total, dtype=np.int64) - shift
    out[np.repeat(out_starts, lengths) + within] = buffer[np.repeat(starts, lengths) + within]


def _chunk_text(fields, rows, first, lo, hi):
    """The bytes of ``rows`` (event indices; histories from ``first``), whose events lie in [lo, hi)."""
    encoded = [_encode(field, lo, hi) for field in fields]
    pieces = []  # per field: (buffer, source starts, lengths)
    for field, (buffer, starts) in zip(fields, encoded):
        if isinstance(field, Value):
            begin, end = starts[rows - lo], starts[rows - lo + 1] - 1
        else:
            begin, end = starts[first - lo], np.maximum(starts[rows - lo] - 1, starts[first - lo])
        pieces.append((buffer, begin, end - begin))
    line_lengths = sum(length for _, _, length in pieces) + len(pieces)  # a tab or newline after each field
    line_starts = np.cumsum(line_lengths) - line_lengths
    out = np.empty(int(line_lengths.sum()), dtype=np.uint8)
    position = line_starts.copy()
    for k, (buffer, begin, length) in enumerate(pieces):
        _gather(out, position, buffer, begin, length)
        position += length
        out[position] = ord("\n") if k == len(pieces) - 1 else ord("\t")
        position += 1
    return out.tobytes()


def text_rows(fields, rows, first=None):
    """Yield the UTF-8 text of one row per entry of ``rows`` (event indices, ascending), in chunks.

    ``fields``: ``Value`` and ``History`` columns over the events (equal lengths); ``first``: for
    each row, the index of its first history event (histories are events ``first .. row - 1``;
    an empty history is an empty field).
    """
    rows = np.asarray(rows, dtype=np.int64)
    first = rows.copy() if first is None else np.asarray(first, dtype=np.int64)
    if not len(rows):
        return
    if np.any(np.diff(rows) < 0) or np.any(first > rows):
        raise ValueError("rows must ascend and each history must end before its row")
    # rows per chunk from a first guess of the bytes a row takes (its fields' tokens, about 12 bytes each)
    history = any(isinstance(field, History) for field in fields)
    per_row = 12 * len(fields) + (12 * float(np.mean(rows - first)) if history else 0)
    step = max(1, int(CHUNK_BYTES // per_row))
    begin = 0
    while begin < len(rows):
        end = min(begin + step, int(np.searchsorted(rows, rows[begin] + CHUNK_SPAN)))
        end = max(end, begin + 1)
        chunk, chunk_first = rows[begin:end], first[begin:end]
        yield _chunk_text(fields, chunk, chunk_first, int(chunk_first.min()), int(chunk[-1]) + 1)
        begin = end
