"""MovieLens raw release -> RecBole atomic files (recbole_gru4rec_plus.data.movielens)."""

import io
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from recbole_gru4rec_plus.data import movielens
from recbole_gru4rec_plus.data.movielens import MOVIELENS_RELEASES, convert_ratings, prepare_movielens
from recbole_gru4rec_plus.errors import PluginError

from conftest import DATA, ROOT

SMALL_RATINGS = os.path.join(DATA, "ml-latest-small", "ratings.csv")


def read_atomic(path):
    """Read an atomic file the way RecBole 1.2.1 does (Dataset._load_feat): python engine, tab, strings."""
    return pd.read_csv(path, delimiter="\t", dtype=str, engine="python")


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def write(path, text, encoding="utf-8"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as out:
        out.write(text)


@pytest.fixture(scope="module")
def small_source():
    return pd.read_csv(SMALL_RATINGS)


def check_small_inter(path, source):
    with open(path) as f:
        assert f.readline() == "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    inter = pd.read_csv(path, sep="\t", dtype={0: np.int32, 1: np.int32, 2: np.float32, 3: np.int64})
    assert len(inter) == len(source) == 100_836
    assert inter.iloc[:, 0].nunique() == 610 and inter.iloc[:, 1].nunique() == 9_724
    assert set(inter.iloc[:, 0]) == set(source.userId) and set(inter.iloc[:, 1]) == set(source.movieId)
    np.testing.assert_array_equal(inter.iloc[:, 3].to_numpy(), source.timestamp.to_numpy())
    np.testing.assert_array_equal(inter.iloc[:, 2].to_numpy(), source.rating.to_numpy(np.float32))
    np.testing.assert_array_equal(inter.iloc[:, 1].to_numpy(), source.movieId.to_numpy())


def test_unpacked_folder_is_converted_losslessly_once(tmp_path, small_source):
    os.makedirs(tmp_path / "ml-latest-small")
    shutil.copy(SMALL_RATINGS, tmp_path / "ml-latest-small" / "ratings.csv")  # the shipped file stays as it is
    assert prepare_movielens(str(tmp_path), "ml-latest-small") is True
    assert files_under(tmp_path) == ["ml-latest-small/ml-latest-small.inter", "ml-latest-small/ratings.csv"]  # no .item
    check_small_inter(tmp_path / "ml-latest-small" / "ml-latest-small.inter", small_source)
    assert prepare_movielens(str(tmp_path), "ml-latest-small") is False


def test_zip_is_streamed_not_extracted(tmp_path, small_source):
    with zipfile.ZipFile(tmp_path / "ml-latest-small.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(SMALL_RATINGS, "ml-latest-small/ratings.csv")
    assert prepare_movielens(str(tmp_path), "ml-latest-small") is True
    assert files_under(tmp_path) == ["ml-latest-small.zip", "ml-latest-small/ml-latest-small.inter"]
    check_small_inter(tmp_path / "ml-latest-small" / "ml-latest-small.inter", small_source)


@pytest.mark.parametrize("chunk_rows", [2, 1_000_000])
def test_dat_release_in_zip_with_its_own_folder_name(tmp_path, monkeypatch, chunk_rows):
    """ml-10m.zip unpacks to ml-10M100K/ holding '::' files; output goes to ml-10m/ml-10m.inter."""
    monkeypatch.setattr(movielens, "CHUNK_ROWS", chunk_rows)
    ratings = "1::122::5::838985046\n1::185::4.5::838983525\n7::2::0.5::1\n"
    movies = "1::Toy Story (1995)::Adventure|Animation|Children\n2::Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)::Comedy|Romance\n"
    with zipfile.ZipFile(tmp_path / "ml-10m.zip", "w") as archive:
        archive.writestr("ml-10M100K/ratings.dat", ratings)
        archive.writestr("ml-10M100K/movies.dat", movies.encode("latin-1"))
    assert prepare_movielens(str(tmp_path), "ml-10m") is True
    inter = read_atomic(tmp_path / "ml-10m" / "ml-10m.inter")
    assert inter.values.tolist() == [["1", "122", "5.0", "838985046"], ["1", "185", "4.5", "838983525"], ["7", "2", "0.5", "1"]]
    item = read_atomic(tmp_path / "ml-10m" / "ml-10m.item")
    assert list(item.columns) == ["item_id:token", "movie_title:token_seq", "genre:token_seq"]
    assert item.values.tolist()[1] == ["2", "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)", "Comedy Romance"]


def test_unpacked_folder_with_the_zips_own_name(tmp_path):
    write(tmp_path / "ml-10M100K" / "ratings.dat", "1::122::5::838985046\n")
    assert prepare_movielens(str(tmp_path), "ml-10m") is True
    assert files_under(tmp_path) == ["ml-10M100K/ratings.dat", "ml-10m/ml-10m.inter"]


def test_unpacked_ml_1m_folder(tmp_path):
    write(tmp_path / "ml-1m" / "ratings.dat", "1::1193::5::978300760\n2::1::3::978298709\n")
    assert prepare_movielens(str(tmp_path), "ml-1m") is True
    inter = read_atomic(tmp_path / "ml-1m" / "ml-1m.inter")
    assert inter.values.tolist() == [["1", "1193", "5.0", "978300760"], ["2", "1", "3.0", "978298709"]]
    assert not (tmp_path / "ml-1m" / "ml-1m.item").exists()


def test_movies_csv_with_quotes_commas_and_tabs(tmp_path):
    write(tmp_path / "ml-latest" / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,10\n1,2,3.5,20\n")
    write(tmp_path / "ml-latest" / "movies.csv", (
        "movieId,title,genres\n"
        '1,"American President, The (1995)",Comedy|Drama|Romance\n'
        '2,"""Great Performances"" Cats (1998)",Musical\n'
        '3,"Tab\there,  and\r\nnewline (2000)",(no genres listed)\n'
    ))
    assert prepare_movielens(str(tmp_path), "ml-latest") is True
    item = read_atomic(tmp_path / "ml-latest" / "ml-latest.item")
    assert item.values.tolist() == [
        ["1", "American President, The (1995)", "Comedy Drama Romance"],
        ["2", '"Great Performances" Cats (1998)', "Musical"],
        ["3", "Tab here, and newline (2000)", "(no_genres_listed)"],
    ]
    with open(tmp_path / "ml-latest" / "ml-latest.item", encoding="utf-8") as f:
        assert len(f.read().splitlines()) == 4


@pytest.mark.parametrize("name", sorted(MOVIELENS_RELEASES))
def test_missing_release_says_what_to_download_and_where(tmp_path, name):
    with pytest.raises(PluginError) as error:
        prepare_movielens(str(tmp_path), name)
    message = str(error.value)
    assert f"https://files.grouplens.org/datasets/movielens/{name}.zip" in message
    assert str(tmp_path) in message and "\n" not in message
    assert os.listdir(tmp_path) == []


def test_not_a_movielens_name_is_left_alone(tmp_path):
    assert prepare_movielens(str(tmp_path), "ml-100k") is False
    assert os.listdir(tmp_path) == []


CSV_HEADER = "userId,movieId,rating,timestamp\n"
GOOD_CSV_ROWS = "".join(f"{i},{i + 10},4.0,{1000 + i}\n" for i in range(1, 8))  # lines 2..8


@pytest.mark.parametrize("chunk_rows", [3, 1_000_000])
@pytest.mark.parametrize("text, line, words", [
    ("userId,itemId,rating,timestamp\n1,2,3,4\n", 1, "header"),
    ("user,item\n", 1, "header"),
    ("", 1, "empty"),
    (CSV_HEADER + GOOD_CSV_ROWS + "8,9,good,1008\n", 9, "rating 'good' is not a number"),
    (CSV_HEADER + GOOD_CSV_ROWS + "8,9,4.0\n", 9, "timestamp is missing"),
    (CSV_HEADER + GOOD_CSV_ROWS + "8,9,4.0,1008,5\n", 9, "too many fields"),
    (CSV_HEADER + GOOD_CSV_ROWS + "8,9,4.0,1008,5,6\n" + GOOD_CSV_ROWS, 9, "too many fields"),
    (CSV_HEADER + "".join(GOOD_CSV_ROWS.splitlines(keepends=True)[:6]) + "7,9,4.0,1008,5,6\n", 8, "too many fields"),  # first line of a chunk
    (CSV_HEADER + GOOD_CSV_ROWS + "\n" + GOOD_CSV_ROWS, 9, "the line is empty"),
    (CSV_HEADER + GOOD_CSV_ROWS + "8.5,9,4.0,1008\n", 9, "userId '8.5' is not a whole number"),
    (CSV_HEADER + GOOD_CSV_ROWS + "8,9,4.0,99999999999999999999999\n", 9, "timestamp '99999999999999999999999' is not a whole number"),
    (CSV_HEADER + GOOD_CSV_ROWS + "8,3000000000,4.0,1008\n", 9, "movieId '3000000000' is not a whole number"),
    (CSV_HEADER + GOOD_CSV_ROWS + "-8,9,4.0,1008\n", 9, "userId '-8' is not a whole number"),
])
def test_malformed_ratings_csv_names_file_and_line_and_writes_nothing(tmp_path, monkeypatch, chunk_rows, text, line, words):
    monkeypatch.setattr(movielens, "CHUNK_ROWS", chunk_rows)
    write(tmp_path / "ml-25m" / "ratings.csv", text)
    with pytest.raises(PluginError) as error:
        prepare_movielens(str(tmp_path), "ml-25m")
    message = str(error.value)
    assert os.path.join("ml-25m", "ratings.csv") in message and f"line {line}:" in message and words in message
    assert files_under(tmp_path) == ["ml-25m/ratings.csv"]


@pytest.mark.parametrize("text, line, words", [
    ("1::2::3::4\n5::6::x::8\n", 2, "rating 'x' is not a number"),
    ("1::2::3::4\n5::6::7\n", 2, "timestamp is missing"),
    ("1::2::3::4\n5::6::7::8::9\n", 2, "too many fields"),
    ("1,2,3,4\n", 1, "userId '1,2,3,4' is not a whole number"),
])
def test_malformed_ratings_dat_in_zip(tmp_path, text, line, words):
    with zipfile.ZipFile(tmp_path / "ml-1m.zip", "w") as archive:
        archive.writestr("ml-1m/ratings.dat", text)
    with pytest.raises(PluginError) as error:
        prepare_movielens(str(tmp_path), "ml-1m")
    message = str(error.value)
    assert "ml-1m.zip:ml-1m/ratings.dat" in message and f"line {line}:" in message and words in message
    assert files_under(tmp_path) == ["ml-1m.zip"]  # no ml-1m/ folder left either


@pytest.mark.parametrize("movies, line", [
    ("movieId,name,genres\n1,A,Drama\n", 1),
    ("movieId,title,genres\n1,A,Drama\nx,B,Drama\n", 3),
    ("movieId,title,genres\n1,A,Drama\n2,B\n", 3),
    ("movieId,title,genres\n1,A,Drama\n2,B,Drama,extra\n", 3),
    ("movieId,title,genres\n1,,Drama\nx,B,Drama\n", 2),  # the first bad line, whatever its problem
])
def test_malformed_movies_csv_writes_nothing(tmp_path, movies, line):
    write(tmp_path / "ml-20m" / "ratings.csv", CSV_HEADER + GOOD_CSV_ROWS)
    write(tmp_path / "ml-20m" / "movies.csv", movies)
    with pytest.raises(PluginError, match=rf"movies\.csv, line {line}:"):
        prepare_movielens(str(tmp_path), "ml-20m")
    assert files_under(tmp_path) == ["ml-20m/movies.csv", "ml-20m/ratings.csv"]


def test_malformed_movies_dat(tmp_path):
    write(tmp_path / "ml-1m" / "ratings.dat", "1::2::3::4\n")
    write(tmp_path / "ml-1m" / "movies.dat", "1::A (1999)::Drama\n2::B (1999)\n")
    with pytest.raises(PluginError, match=r"movies\.dat, line 2: genres are missing"):
        prepare_movielens(str(tmp_path), "ml-1m")
    assert files_under(tmp_path) == ["ml-1m/movies.dat", "ml-1m/ratings.dat"]


def test_damaged_zip(tmp_path):
    (tmp_path / "ml-25m.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PluginError, match="damaged"):
        prepare_movielens(str(tmp_path), "ml-25m")
    assert files_under(tmp_path) == ["ml-25m.zip"]


def test_corrupted_zip_member_is_reported_and_nothing_is_written(tmp_path):
    with zipfile.ZipFile(tmp_path / "ml-25m.zip", "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("ml-25m/ratings.csv", CSV_HEADER + GOOD_CSV_ROWS)
    data = bytearray((tmp_path / "ml-25m.zip").read_bytes())
    position = data.index(b"3,13,4.0,1003")
    data[position] = ord("4")  # still a valid rating, but the CRC no longer matches
    (tmp_path / "ml-25m.zip").write_bytes(bytes(data))
    with pytest.raises(PluginError, match="damaged or incomplete: delete it and download https://"):
        prepare_movielens(str(tmp_path), "ml-25m")
    assert files_under(tmp_path) == ["ml-25m.zip"]


def test_existing_atomic_files_are_untouched(tmp_path):
    write(tmp_path / "ml-1m" / "ratings.dat", "1::2::3::4\n")
    write(tmp_path / "ml-1m" / "ml-1m.inter", "user_id:token\titem_id:token\nmine\tmine\n")
    os.utime(tmp_path / "ml-1m" / "ml-1m.inter", (1_000_000, 1_000_000))
    assert prepare_movielens(str(tmp_path), "ml-1m") is False
    assert (tmp_path / "ml-1m" / "ml-1m.inter").read_text() == "user_id:token\titem_id:token\nmine\tmine\n"
    assert os.stat(tmp_path / "ml-1m" / "ml-1m.inter").st_mtime == 1_000_000
    assert files_under(tmp_path) == ["ml-1m/ml-1m.inter", "ml-1m/ratings.dat"]


def test_existing_item_file_is_kept_when_only_inter_is_missing(tmp_path):
    write(tmp_path / "ml-1m" / "ratings.dat", "1::2::3::4\n")
    write(tmp_path / "ml-1m" / "movies.dat", "2::Title (1999)::Drama\n")
    write(tmp_path / "ml-1m" / "ml-1m.item", "my own item file\n")
    assert prepare_movielens(str(tmp_path), "ml-1m") is True
    assert (tmp_path / "ml-1m" / "ml-1m.item").read_text() == "my own item file\n"
    assert (tmp_path / "ml-1m" / "ml-1m.inter").exists()


def test_convert_ratings_from_a_file_object_without_header(tmp_path):
    out = tmp_path / "x.inter"
    assert convert_ratings(io.BytesIO(b"3,4,2.5,7\n5,6,1,8\n"), ",", str(out)) == 2
    assert out.read_text().splitlines()[1:] == ["3\t4\t2.5\t7", "5\t6\t1.0\t8"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask  # like any file the user writes, not mkstemp's 0600


def test_numpy_writer_matches_pandas_to_csv():
    rng = np.random.default_rng(0)
    columns = [
        np.r_[0, 9, 10, rng.integers(0, 2**31 - 1, 500)].astype(np.int32),
        rng.integers(1, 300_000, 503).astype(np.int32),
        np.r_[0.1, 0.5, 5.0, rng.integers(0, 11, 500) / 2].astype(np.float32),
        np.r_[0, 1, 2**62, rng.integers(0, 2**40, 500)].astype(np.int64),
    ]
    expected = pd.DataFrame(dict(enumerate(columns))).to_csv(sep="\t", header=False, index=False, lineterminator="\n")
    assert movielens._tsv(columns) == expected.encode()


def test_converted_release_loads_in_recbole_with_the_plugin_yaml(in_tmp_dir):  # in_tmp_dir: conftest.py
    """The atomic files and properties/dataset/ml-latest-small.yaml work together in RecBole."""
    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.data.dataset import SessionParallelDataset

    movie_ids = sorted(set(pd.read_csv(SMALL_RATINGS, usecols=["movieId"]).movieId) - {1})
    movies = "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n" + "".join(f"{m},Movie {m},Drama\n" for m in movie_ids)
    with zipfile.ZipFile(in_tmp_dir / "ml-latest-small.zip", "w") as archive:  # RecBole drops ratings of movies not in .item
        archive.write(SMALL_RATINGS, "ml-latest-small/ratings.csv")
        archive.writestr("ml-latest-small/movies.csv", movies)
    assert prepare_movielens(str(in_tmp_dir), "ml-latest-small")
    load_col = {"inter": ["user_id", "item_id", "rating", "timestamp"], "item": ["item_id", "movie_title", "genre"]}
    options = {"data_path": str(in_tmp_dir), "load_col": load_col, "show_progress": False, "state": "WARNING"}
    config = PluginConfig("GRU4RecPlus", "ml-latest-small", None, options)
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"} and config["valid_metric"] == "MRR@20"
    assert config["normalize_all"] is False and config["val_interval"] is None
    dataset = SessionParallelDataset(config)
    timestamps = dataset.inter_feat["timestamp"].to_numpy()
    assert timestamps.min() >= 828_124_615  # seconds, as in ratings.csv: not normalised
    counts = np.bincount(dataset.inter_feat["user_id"].to_numpy())[1:]
    assert counts.min() >= 5 and dataset.user_num - 1 == 610  # every user of the release has >= 20 ratings
    assert len(dataset.inter_feat) < 100_836  # items with < 5 ratings are gone (5-core)
    toy_story = dataset.item_feat[dataset.item_feat["item_id"] == dataset.token2id("item_id", "1")]
    assert [dataset.id2token("genre", toy_story["genre"].iloc[0]).tolist()] == [["Adventure", "Animation"]]


def test_importer_never_touches_torch_or_recbole():
    """Loaded without the package __init__ (which registers the torch models), the module needs only numpy/pandas."""
    code = (
        "import importlib, sys, types\n"
        f"package = types.ModuleType('recbole_gru4rec_plus'); package.__path__ = [{os.path.join(ROOT, 'recbole_gru4rec_plus')!r}]\n"
        "sys.modules['recbole_gru4rec_plus'] = package\n"
        "importlib.import_module('recbole_gru4rec_plus.data.movielens')\n"
        "assert not {'torch', 'recbole'} & set(sys.modules), sorted(m for m in sys.modules if m in ('torch', 'recbole'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
