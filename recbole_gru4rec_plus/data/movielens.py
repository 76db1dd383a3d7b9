"""Turn an official GroupLens MovieLens release into RecBole atomic files, once.

RecBole reads ``data_path/NAME/NAME.inter``; GroupLens ships ``NAME.zip`` holding ``ratings.csv``
(or ``ratings.dat``) and ``movies.csv``/``.dat``. ``prepare_movielens`` finds the release in
``data_path`` (the zip, read as a stream, or its unpacked folder), checks every line, and writes
``NAME.inter`` (every rating, ids as in the release) and ``NAME.item`` when a movies file is there.
Outputs appear atomically (temporary file + ``os.replace``); existing files are never touched.
Plain numpy/pandas: an importer never touches torch.
"""

import contextlib
import csv
import io
import os
import posixpath
import re
import uuid
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import PluginError

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
ITEM_HEADER = "item_id:token\tmovie_title:token_seq\tgenre:token_seq"
RATING_COLUMNS = ("userId", "movieId", "rating", "timestamp")
RATING_DTYPES = (np.int32, np.int32, np.float32, np.int64)
MOVIE_COLUMNS = ("movieId", "title", "genres")
CHUNK_ROWS = 250_000  # rows parsed at a time: bounds peak memory (~75 MB), whatever the release size; larger is no faster


@dataclass(frozen=True)
class MovieLensRelease:
    """Where a GroupLens release comes from and what is inside its zip."""

    zip_name: str  # e.g. 'ml-25m.zip'
    folder: str  # the folder the zip unpacks to (ml-10m.zip unpacks to 'ml-10M100K')
    ratings: str  # 'ratings.csv' or 'ratings.dat'
    movies: str  # 'movies.csv' or 'movies.dat'
    separator: str  # ',' or '::'
    url: str


def _release(name, folder=None, old_format=False):
    extension, separator = (".dat", "::") if old_format else (".csv", ",")
    return MovieLensRelease(
        zip_name=f"{name}.zip",
        folder=folder or name,
        ratings=f"ratings{extension}",
        movies=f"movies{extension}",
        separator=separator,
        url=f"https://files.grouplens.org/datasets/movielens/{name}.zip",
    )


MOVIELENS_RELEASES = {
    "ml-1m": _release("ml-1m", old_format=True),
    "ml-10m": _release("ml-10m", folder="ml-10M100K", old_format=True),
    "ml-20m": _release("ml-20m"),
    "ml-25m": _release("ml-25m"),
    "ml-latest": _release("ml-latest"),
    "ml-latest-small": _release("ml-latest-small"),
}


def prepare_movielens(data_path: str, name: str) -> bool:
    """If `name` is a MovieLens release and ``data_path/name/name.inter`` is missing, convert the
    raw release found in data_path (``data_path/<name>.zip``, or its unpacked folder
    ``data_path/<name>/`` or ``data_path/<zip folder>/``) into ``data_path/name/name.inter``
    (+ ``name.item`` when a movies file exists and no ``name.item`` is there yet).

    Returns True if it converted, False if there was nothing to do (not a MovieLens name, or the
    atomic files are already there). Raises PluginError if neither they nor the release are there.
    """
    release = MOVIELENS_RELEASES.get(name)
    out_dir = os.path.join(data_path, name)
    inter_path = os.path.join(out_dir, f"{name}.inter")
    item_path = os.path.join(out_dir, f"{name}.item")
    if release is None or os.path.isfile(inter_path):
        return False
    created_out_dir = not os.path.isdir(out_dir)
    try:
        with _open_release(data_path, name, release) as (ratings, movies):
            os.makedirs(out_dir, exist_ok=True)
            # the small movies file first: a bad one fails before the long ratings conversion
            items = None if movies is None or os.path.exists(item_path) else read_movies(*movies, release.separator)
            convert_ratings(ratings[0], release.separator, inter_path, source=ratings[1])
        if items is not None:  # .inter is complete: RecBole can already run without the .item
            rows = items.to_csv(sep="\t", header=False, index=False, lineterminator="\n")
            with _atomic_output(item_path) as out:
                out.write(f"{ITEM_HEADER}\n{rows}".encode())
    except BaseException:
        if created_out_dir:  # an empty folder left behind would stop RecBole's own download
            with contextlib.suppress(OSError):
                os.rmdir(out_dir)
        raise
    return True


@contextlib.contextmanager
def _open_release(data_path, name, release):
    """Yield ((ratings file, label), (movies file, label) or None) from the unpacked folder or the zip."""
    for folder in dict.fromkeys((name, release.folder)):  # both names, once each (equal for most releases)
        folder_path = os.path.join(data_path, folder)
        ratings_path = os.path.join(folder_path, release.ratings)
        if os.path.isfile(ratings_path):
            movies_path = os.path.join(folder_path, release.movies)
            with open(ratings_path, "rb") as ratings:
                if not os.path.isfile(movies_path):
                    yield (ratings, ratings_path), None
                    return
                with open(movies_path, "rb") as movies:
                    yield (ratings, ratings_path), (movies, movies_path)
                    return
    zip_path = os.path.join(data_path, release.zip_name)
    if not os.path.isfile(zip_path):
        raise PluginError(
            f"dataset '{name}' not found: download {release.url} and put it in {os.path.abspath(data_path)}"
            f"{os.sep} (as {release.zip_name}, or unzipped there as {release.folder}{os.sep}{release.ratings})"
        )
    damaged = f"{zip_path} is damaged or incomplete: delete it and download {release.url} again"
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = archive.namelist()
            found = [m for m in members if posixpath.basename(m) == release.ratings and "__MACOSX" not in m]
            if not found:
                raise PluginError(f"{zip_path} holds no {release.ratings}: download {release.url} again")
            expected = f"{release.folder}/{release.ratings}"
            ratings_member = expected if expected in found else min(found, key=len)
            movies_member = posixpath.join(posixpath.dirname(ratings_member), release.movies)
            label = lambda member: f"{zip_path}:{member}"
            with archive.open(ratings_member) as ratings:  # streamed: nothing is extracted to disk
                if movies_member not in members:
                    yield (ratings, label(ratings_member)), None
                    return
                with archive.open(movies_member) as movies:
                    yield (ratings, label(ratings_member)), (movies, label(movies_member))
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise PluginError(f"{damaged} ({error})") from error


@contextlib.contextmanager
def _atomic_output(path):
    """A binary file that appears at `path` only once it is complete (written beside it, then renamed)."""
    folder, base = os.path.split(path)
    temporary = os.path.join(folder, f".{base}.{uuid.uuid4().hex[:12]}.tmp")  # not mkstemp: keep the umask's permissions
    out = open(temporary, "xb")
    try:
        with out:
            yield out
        os.replace(temporary, path)
    except BaseException:
        os.remove(temporary)
        raise


def convert_ratings(ratings_path_or_fileobj, separator, out_inter_path, *, source=None) -> int:
    """Write every rating of a MovieLens ratings file to a RecBole ``.inter`` file; return the row count.

    The input is a path or a seekable file object (``open(path, 'rb')``, ``ZipFile.open(member)``)
    holding ``userId<sep>movieId<sep>rating<sep>timestamp`` lines, with or without that header
    line; `separator` is ',' (ratings.csv) or '::' (ratings.dat). It is read in chunks of
    CHUNK_ROWS with pandas' C parser, and every value is checked: a bad line raises PluginError
    naming `source` (default: the file's name) and the line, and nothing is written.
    """
    with contextlib.ExitStack() as stack:
        if isinstance(ratings_path_or_fileobj, (str, os.PathLike)):
            source = source or os.fspath(ratings_path_or_fileobj)
            stream = stack.enter_context(open(ratings_path_or_fileobj, "rb"))
        else:
            stream = ratings_path_or_fileobj
            source = source or str(getattr(stream, "name", "ratings file"))
        header_lines = _skip_header(stream, separator, source)
        rows = 0
        with _atomic_output(out_inter_path) as out:
            out.write(f"{INTER_HEADER}\n".encode())
            for columns in _rating_chunks(stream, separator, source, header_lines):
                out.write(_tsv(columns))
                rows += len(columns[0])
            if rows == 0:
                raise PluginError(f"{source} holds no ratings: download the release again")
    return rows


def _skip_header(stream, separator, source):
    """Consume the header line if there is one; return how many lines were consumed (0 or 1)."""
    start = stream.tell()
    first = stream.readline()
    text = (first.decode("utf-8", "replace") if isinstance(first, bytes) else first).lstrip("\ufeff").strip()
    header = separator.join(RATING_COLUMNS)
    if text == header:
        return 1
    if text[:1].isdigit():
        stream.seek(start)
        return 0
    found = f"'{text[:80]}'" if text else "an empty line"
    raise PluginError(f"{source}, line 1: expected the header '{header}' or a first rating, found {found}; use the GroupLens file as released")


def _rating_chunks(stream, separator, source, header_lines):
    """Yield checked columns (user ids int32, item ids int32, ratings float32, timestamps int64) chunk by chunk.

    pandas' fast C parser splits on one character only: '::' is read as ':' with an empty field
    between two values. One more field than expected is declared, so that a line with too many
    fields shows up as a value there (pandas silently drops extra fields on a chunk's first line).
    """
    char, width = separator[:1], len(separator)
    if not char or separator != char * width:
        raise ValueError(f"unsupported separator {separator!r}: use ',' or a repeated character such as '::'")
    names = [f"field{i}" for i in range(len(RATING_COLUMNS) * width + 1)]
    value_names = names[::width][: len(RATING_COLUMNS)]
    must_be_empty = [n for n in names if n not in value_names]  # the gaps inside '::' and the extra field
    expected = f"'{separator.join(RATING_COLUMNS)}' with integer ids and timestamp and a numeric rating"
    reader = pd.read_csv(
        stream, sep=char, header=None, names=names, index_col=False, quoting=csv.QUOTE_NONE,
        skip_blank_lines=False, chunksize=CHUNK_ROWS, engine="c", encoding="utf-8",
    )
    first_line = header_lines + 1
    try:
        for chunk in reader:
            yield _checked_columns(chunk, value_names, must_be_empty, first_line, source, expected)
            first_line += len(chunk)
    except pd.errors.ParserError as error:  # a line with several fields too many
        line = re.search(r"line (\d+)", str(error))
        where = f", line {int(line.group(1)) + header_lines}" if line else ""
        raise PluginError(f"{source}{where}: too many fields, expected {expected}; fix or re-download the file") from error
    except UnicodeDecodeError as error:
        raise PluginError(f"{source} is not a text file ({error}); download the release again") from error


def _checked_columns(chunk, value_names, must_be_empty, first_line, source, expected):
    def fail(row, problem):
        raise PluginError(f"{source}, line {first_line + row}: {problem}, expected {expected}; fix or re-download the file")

    extra = chunk[must_be_empty].notna().any(axis=1).to_numpy()
    if extra.any():
        fail(int(np.argmax(extra)), "too many fields or a wrong separator")
    columns = []
    for name, field, dtype in zip(value_names, RATING_COLUMNS, RATING_DTYPES):
        values, bad_row = _as_numbers(chunk[name], dtype)
        if bad_row is not None:
            raw = chunk[name].iloc[bad_row]
            if chunk.iloc[bad_row].isna().all():
                fail(bad_row, "the line is empty")
            fail(bad_row, f"{field} is missing" if pd.isna(raw) else f"{field} '{raw}' is not {'a number' if dtype == np.float32 else 'a whole number >= 0'}")
        columns.append(values)
    return columns


def _as_numbers(column, dtype):
    """(values as `dtype`, None), or (None, first bad row): fast for clean columns, exact for bad ones."""
    integer = np.issubdtype(dtype, np.integer)
    low, high = (0, np.iinfo(dtype).max) if integer else (None, None)  # MovieLens ids and timestamps are >= 0
    if integer and column.dtype.kind == "i" and column.min() >= low and column.max() <= high:
        return column.to_numpy(dtype), None
    if not integer and column.dtype.kind in "if" and np.isfinite(column.to_numpy(np.float64)).all():
        return column.to_numpy(dtype), None
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(numbers)
    if integer:
        ok &= (numbers == np.round(numbers)) & (numbers >= low) & (numbers <= high)
    if ok.all():
        return numbers.astype(dtype), None
    return None, int(np.argmin(ok))


def _tsv(columns):
    """Tab-separated lines of integer and float columns, formatted with numpy: 4x faster than to_csv, same text."""
    rows = len(columns[0])
    separator = lambda char: np.full((rows, 1), ord(char), np.uint8)
    parts = []
    for values in columns:
        parts += [_digits(values) if values.dtype.kind == "i" else _float_texts(values), separator("\t")]
    parts[-1] = separator("\n")
    table = np.concatenate(parts, axis=1)  # one row per line, each value right-aligned after NUL padding
    return table[table != 0].tobytes()


def _digits(values):
    """ASCII digits of integers >= 0, right-aligned in a NUL-padded (n, width) uint8 table."""
    width = len(str(int(values.max()))) if len(values) else 1
    table = np.zeros((len(values), width), np.uint8)
    rest = values.astype(np.int64)
    for position in range(width - 1, -1, -1):
        table[:, position] = np.where(rest > 0, 48 + rest % 10, 0)
        rest //= 10
    table[values == 0, -1] = ord("0")
    return table


def _float_texts(values):
    """numpy's shortest text of each float ('4.0', '3.5'), right-aligned like _digits: ratings take few values."""
    distinct, which = np.unique(values, return_inverse=True)
    texts = [str(value).encode("ascii") for value in distinct]
    width = max(map(len, texts), default=1)
    table = np.zeros((len(distinct), width), np.uint8)
    for row, text in enumerate(texts):
        table[row, width - len(text):] = np.frombuffer(text, np.uint8)
    return table[which]


def read_movies(fileobj, source, separator):
    """The movies file as the rows of a RecBole ``.item`` file (item_id, movie_title, genre).

    Titles keep their words (tabs and newlines become single spaces, so they cannot break the
    file) and their year, as in the release; genres are space-separated, a genre's own spaces
    become '_' ('(no genres listed)' -> '(no_genres_listed)'). ml-1m's movies.dat is latin-1.
    """
    data = fileobj.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    header = separator.join(MOVIE_COLUMNS)
    if separator == ",":
        table = pd.read_csv(io.StringIO(text), header=None, names=[*MOVIE_COLUMNS, "extra"], dtype=str, index_col=False,
                            keep_default_na=False, skip_blank_lines=False)
        if not len(table) or list(table.iloc[0, :3]) != list(MOVIE_COLUMNS):
            raise PluginError(f"{source}, line 1: expected the header '{header}'; use the GroupLens file as released")
        table, first_line = table.iloc[1:], 2
    else:
        table = pd.Series(text.splitlines()).str.split(separator, n=2, expand=True).reindex(columns=range(3))
        table.columns = list(MOVIE_COLUMNS)
        table["extra"] = ""
        first_line = 1
    ids = pd.to_numeric(table["movieId"], errors="coerce").to_numpy(np.float64)
    problems = {
        "movieId is not a whole number >= 0": ~((ids == np.round(ids)) & (ids >= 0) & (ids < 2**31)),
        "title is missing": (table["title"].fillna("").str.strip() == "").to_numpy(),
        "genres are missing": (table["genres"].fillna("").str.strip() == "").to_numpy(),
        "too many fields": (table["extra"] != "").to_numpy(),
    }
    bad = np.column_stack(list(problems.values()))
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        problem = list(problems)[int(np.argmax(bad[row]))]
        raise PluginError(f"{source}, line {first_line + row}: {problem}, expected '{header}'; fix or re-download the file")
    genres = table["genres"].str.strip().str.replace(r"\s*\|\s*", "|", regex=True).str.replace(r"\s+", "_", regex=True)
    return pd.DataFrame({
        "item_id": ids.astype(np.int64),
        "movie_title": table["title"].str.split().str.join(" ").to_numpy(),
        "genre": genres.str.replace("|", " ", regex=False).to_numpy(),
    })
