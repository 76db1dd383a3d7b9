"""Time and peak memory of the MovieLens importer on a synthetic ml-25m-shaped ratings.csv.

    python bench/bench_movielens.py                 # 25M rows, 162,541 users, 59,047 movies (~680 MB)
    python bench/bench_movielens.py --rows 2500000  # a tenth, users and movies scaled alike
    python bench/bench_movielens.py --zip           # also convert from a deflated zip member

Each conversion runs in a fresh Python process that loads only the importer (numpy, pandas; not
the package's torch models), and reports its peak RSS with the RSS after the imports, for the
difference. The peak is /proc/self/status VmHWM: ru_maxrss (RUSAGE_SELF or RUSAGE_CHILDREN) of a
process started by fork/exec also counts the RSS of its parent at the fork, here the generator's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ML25M_ROWS, ML25M_USERS, ML25M_MOVIES = 25_000_095, 162_541, 59_047

CHILD = """
import importlib, json, sys, time, types
def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
package = types.ModuleType("recbole_gru4rec_plus")  # skip the package __init__, which imports torch
package.__path__ = [{package_dir!r}]
sys.modules["recbole_gru4rec_plus"] = package
movielens = importlib.import_module("recbole_gru4rec_plus.data.movielens")
if {chunk_rows!r}:
    movielens.CHUNK_ROWS = {chunk_rows!r}
assert "torch" not in sys.modules
baseline_mb = peak_mb()
start = time.perf_counter()
if {member!r}:
    import zipfile
    with zipfile.ZipFile({source!r}) as archive, archive.open({member!r}) as ratings:
        rows = movielens.convert_ratings(ratings, ",", {out!r})
else:
    rows = movielens.convert_ratings({source!r}, ",", {out!r})
seconds = time.perf_counter() - start
print(json.dumps(dict(rows=rows, seconds=seconds, baseline_mb=baseline_mb, peak_mb=peak_mb())))
"""


def write_synthetic_ratings(path, rows, users, movies, seed=0, chunk_rows=2_000_000):
    """An ml-25m-like ratings.csv: sorted by user, heavy-tailed user activity and movie popularity, half-star ratings."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.2, users)
    per_user = 1 + rng.multinomial(rows - users, activity / activity.sum())
    user_ids = np.repeat(np.arange(1, users + 1, dtype=np.int32), per_user)
    movie_ids = np.sort(rng.choice(209_171, movies, replace=False) + 1).astype(np.int32)  # ml-25m's ids reach 209171
    popularity = 1.0 / np.arange(1, movies + 1) ** 0.9
    popularity /= popularity.sum()
    star_weights = np.array([1.6, 3.3, 1.6, 6.6, 5.0, 19.6, 12.4, 26.6, 8.5, 14.4])
    with open(path, "w", newline="") as out:
        out.write("userId,movieId,rating,timestamp\n")
        for start in range(0, rows, chunk_rows):
            n = min(chunk_rows, rows - start)
            frame = pd.DataFrame({
                "userId": user_ids[start:start + n],
                "movieId": movie_ids[rng.choice(movies, n, p=popularity)],
                "rating": rng.choice(np.arange(1, 11) / 2, n, p=star_weights / star_weights.sum()),
                "timestamp": rng.integers(789_652_009, 1_574_327_703, n),
            })
            frame.to_csv(out, header=False, index=False, lineterminator="\n")


def run_conversion(source, out, member=None, chunk_rows=None):
    code = CHILD.format(package_dir=os.path.join(ROOT, "recbole_gru4rec_plus"), source=source, out=out, member=member,
                        chunk_rows=chunk_rows)
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(result.stdout)


def report(label, result, input_bytes, out):
    mb = input_bytes / 2**20
    print(f"{label}: {result['rows']:,} rows in {result['seconds']:.2f} s = {result['rows'] / result['seconds'] / 1e6:.2f} M rows/s, "
          f"{mb / result['seconds']:.0f} MB/s of csv; peak RSS {result['peak_mb']:.0f} MB "
          f"(after imports {result['baseline_mb']:.0f} MB, conversion +{result['peak_mb'] - result['baseline_mb']:.0f} MB); "
          f".inter {os.path.getsize(out) / 2**20:.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ML25M_ROWS)
    parser.add_argument("--users", type=int, help="default: ml-25m's, scaled with --rows")
    parser.add_argument("--movies", type=int, help="default: ml-25m's, scaled with --rows")
    parser.add_argument("--chunk-rows", type=int, help="override movielens.CHUNK_ROWS")
    parser.add_argument("--zip", action="store_true", help="also convert from a zip member (deflated), as downloaded")
    args = parser.parse_args()
    scale = args.rows / ML25M_ROWS
    users = args.users or max(1, round(ML25M_USERS * scale))
    movies = args.movies or max(1, round(ML25M_MOVIES * scale))

    with tempfile.TemporaryDirectory() as folder:
        ratings = os.path.join(folder, "ratings.csv")
        start = time.perf_counter()
        write_synthetic_ratings(ratings, args.rows, users, movies)
        size = os.path.getsize(ratings)
        print(f"synthetic ratings.csv: {args.rows:,} rows, {users:,} users, {movies:,} movies, "
              f"{size / 2**20:.0f} MB (written in {time.perf_counter() - start:.1f} s)")
        out = os.path.join(folder, "out.inter")
        report("csv file", run_conversion(ratings, out, chunk_rows=args.chunk_rows), size, out)
        if args.zip:
            archive_path = os.path.join(folder, "ml-25m.zip")
            with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.write(ratings, "ml-25m/ratings.csv")
            report("zip member", run_conversion(archive_path, out, "ml-25m/ratings.csv", args.chunk_rows), size, out)


if __name__ == "__main__":
    main()
