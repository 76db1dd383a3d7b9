"""Leaderboards: cells, resume, the board's numbers, paired tests, the picture, Ray, bad input."""

import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy import stats as scipy_stats

from conftest import ROOT
from recbole_gru4rec_plus.leaderboard.board import build_board, markdown
from recbole_gru4rec_plus.leaderboard.experiment import Experiment, load_experiment
from recbole_gru4rec_plus.leaderboard.ray_executor import _CellWorker
from recbole_gru4rec_plus.leaderboard.runner import run_experiment
from recbole_gru4rec_plus.leaderboard.stats import holm, mean_and_interval, paired_wilcoxon

LEADERBOARD = os.path.join(ROOT, "run", "leaderboard.py")
SPLIT = "{split: {LS: valid_and_test}, order: TO, mode: full, group_by: user}"
TINY = f"""name: tiny
datasets:
  ml-100k: {{user_inter_num_interval: "[0,30)"}}
models:
  GRU4RecPlus: {{n_sample: 16}}
  GRU4RecPlus-xe: {{model: GRU4RecPlus, loss: cross-entropy, n_sample: 16, grid: {{learning_rate: [0.05, 0.2]}}}}
  Pop: {{}}
seeds: [1, 2]
settings: {{epochs: 1, threads: 1, eval_args: {SPLIT}, breakdown: popularity, breakdown_bins: 3}}
metrics: [MRR@20, Recall@20]
"""


def _write(folder, text, name="tiny.yaml"):
    path = folder / name
    path.write_text(text)
    return str(path)


def _quiet(line):
    pass


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("board")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # RecBole writes log/ and saved/ into the working directory
        path = _write(folder, TINY)
        experiment, board, counts = run_experiment(path, str(folder / "out"), report=_quiet)
        records = [json.load(open(folder / "out" / "cells" / name)) for name in sorted(os.listdir(folder / "out" / "cells"))]
        yield folder, path, experiment, board, counts, records


def test_every_cell_is_one_file_keyed_by_its_config(tiny_run):
    folder, _, _, _, counts, records = tiny_run
    assert counts == {"cells": 8, "ran": 8, "failed": 0}  # 2 + 2x2 grid + 2 seeds
    assert len({r["key"] for r in records}) == 8 and all(r["status"] == "done" for r in records)
    for record in records:
        assert {"valid", "test", "best_epoch", "train_seconds", "seconds_per_epoch", "peak_rss_mib", "per_target"} <= set(record)
        assert len(record["per_target"]["keys"]) == len(record["per_target"]["reciprocal_rank"]) > 0
        assert os.path.isfile(record["log_file"]) and record["run_id"] in record["log_file"]  # its own log


def test_board_rows_are_means_and_student_t_intervals_of_the_cell_files(tiny_run):
    _, _, experiment, board, _, records = tiny_run
    for row in board["ml-100k"]:
        chosen = [r for r in records if r["label"] == row["label"]]
        if row["label"] == "GRU4RecPlus-xe":
            chosen = [r for r in chosen if r["grid_point"] == row["records"][0]["grid_point"]]
        for metric in experiment.metrics:
            values = [r["test"][metric.lower()] for r in chosen]
            mean = sum(values) / len(values)
            half = scipy_stats.t.ppf(0.975, 1) * np.std(values, ddof=1) / math.sqrt(2)  # by hand, 2 seeds
            assert row[metric][0] == pytest.approx(mean) and row[metric][1] == pytest.approx(half)
        assert row["train_seconds"] == pytest.approx(np.mean([r["train_seconds"] for r in chosen]))


def test_a_grid_is_decided_on_validation_only(tiny_run):
    _, _, experiment, board, _, records = tiny_run
    row = next(r for r in board["ml-100k"] if r["label"] == "GRU4RecPlus-xe")
    by_rate = {}
    for record in records:
        if record["label"] == "GRU4RecPlus-xe":
            by_rate.setdefault(record["grid_point"]["learning_rate"], []).append(record["valid"]["mrr@20"])
    best_rate = max(by_rate, key=lambda rate: np.mean(by_rate[rate]))
    assert row["setting"] == f"learning_rate={best_rate}"


def test_the_board_files_and_the_picture_are_written(tiny_run):
    folder = tiny_run[0]
    markdown = (folder / "out" / "leaderboard.md").read_text()
    assert "| 1 |" in markdown and "best" in markdown and "Pop" in markdown
    lines = (folder / "out" / "leaderboard.csv").read_text().strip().splitlines()
    assert lines[0].startswith("dataset,rank,label") and len(lines) == 4
    import re

    decimals = [len(part) for line in lines[1:] for part in re.findall(r"\d\.(\d+)", line)]
    assert decimals and max(decimals) <= 4  # rounded as the board shows it, no float noise
    png = folder / "out" / "leaderboard.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_the_board_breaks_the_ranking_metric_down_by_target_popularity(tiny_run):
    folder, _, experiment, board, _, records = tiny_run
    pop = [r for r in records if r["label"] == "Pop"]
    assert all(len(r["breakdown"]) == 3 for r in pop)
    row = next(row for row in board["ml-100k"] if row["label"] == "Pop")
    for (support, targets, (mean, _)), *bins in zip(row["breakdown"], *(r["breakdown"] for r in pop)):
        assert mean == pytest.approx(np.mean([b["mrr@20"] for b in bins]))
        assert all(tuple(b["support"]) == support and b["targets"] == targets for b in bins)
    text = (folder / "out" / "leaderboard.md").read_text()
    assert "MRR@20 by the target item's training support" in text
    low, high = row["breakdown"][0][0]
    assert f"| [{low}, {high}) ({row['breakdown'][0][1]}) |" in text and "| Pop | " in text.split("training support")[1]


def test_a_second_run_runs_nothing_and_a_changed_option_is_a_new_cell(tiny_run):
    folder, path, *_ = tiny_run
    _, _, counts = run_experiment(path, str(folder / "out"), report=_quiet)
    assert counts["ran"] == 0
    changed = _write(folder, TINY.replace("Pop: {}", "Pop: {}\n  GRU4RecPlus-b8: {model: GRU4RecPlus, n_sample: 16, "
                                                     "train_batch_size: 8}"), "changed.yaml")
    _, _, counts = run_experiment(changed, str(folder / "out"), report=_quiet)
    assert counts == {"cells": 10, "ran": 2, "failed": 0}


def test_an_interrupted_sweep_resumes_with_only_the_missing_cells(tmp_path, monkeypatch):
    path = _write(tmp_path, TINY.replace("name: tiny", "name: resumed"))
    output = tmp_path / "out"
    sweep = subprocess.Popen([sys.executable, LEADERBOARD, path, "--output", str(output)], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not ((output / "cells").is_dir() and os.listdir(output / "cells")):
        assert time.time() < deadline and sweep.poll() is None
        time.sleep(0.05)
    sweep.kill()
    sweep.wait()
    finished = len([name for name in os.listdir(output / "cells") if name.endswith(".json")])
    assert 1 <= finished < 8
    monkeypatch.chdir(tmp_path)
    _, _, counts = run_experiment(path, str(output), report=_quiet)
    assert counts["ran"] == 8 - finished and counts["cells"] == 8


class _DiesOnOneCell(_CellWorker):
    """A Ray worker whose process dies in the middle of one cell (GRU4RecPlus, seed 1)."""

    def run(self, experiment, cell, config, key, keep_checkpoints):
        if cell.label == "GRU4RecPlus" and cell.seed == 1:
            os._exit(1)
        return super().run(experiment, cell, config, key, keep_checkpoints)


def test_ray_workers_in_their_own_folders_send_cells_to_the_driver_and_a_dead_one_fails_its_cell(tiny_run, tmp_path,
                                                                                                  monkeypatch):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    folder, path, *_ = tiny_run
    monkeypatch.chdir(tmp_path)
    _, _, counts = run_experiment(path, str(tmp_path / "ray"), executor="ray", workers=2, report=_quiet,
                                  ray_worker=_DiesOnOneCell)
    local = {name: json.load(open(folder / "out" / "cells" / name)) for name in os.listdir(folder / "out" / "cells")}
    on_ray = {name: json.load(open(tmp_path / "ray" / "cells" / name)) for name in os.listdir(tmp_path / "ray" / "cells")}
    assert set(on_ray) <= set(local) and counts == {"cells": 8, "ran": 8, "failed": 1}
    failed = [r for r in on_ray.values() if r["status"] == "failed"]
    assert [(r["label"], r["seed"]) for r in failed] == [("GRU4RecPlus", 1)]
    assert failed[0]["error"].startswith("the Ray worker died") and "\n" not in failed[0]["error"]
    for name, record in on_ray.items():
        if record["status"] == "done":  # the same numbers as in this process, from a worker's own folder
            assert (record["test"], record["valid"], record["per_target"]) == (
                local[name]["test"], local[name]["valid"], local[name]["per_target"])
            assert not record["log_file"].startswith(str(tmp_path)) and "gru4rec-plus-cells-" in record["log_file"]
    assert not (tmp_path / "ray" / "logs").exists() and not (tmp_path / "log").exists()


def test_ray_options_without_the_ray_executor_are_one_error_line(tmp_path):
    path = _write(tmp_path, TINY)
    result = subprocess.run([sys.executable, LEADERBOARD, path, "--workers", "2"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == ("error: --address and --workers are options of --executor ray: "
                                                      "add --executor ray or drop them")


TUNED = TINY.replace("seeds: [1, 2]", "seeds: [1, 2, 3]\ntune_seeds: [1]").replace(
    "  GRU4RecPlus: {n_sample: 16}\n", "").replace(", eval_args: " + SPLIT, "").replace(
    "learning_rate: [0.05, 0.2]", "learning_rate: [0.01, 0.2]")


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tuned")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        path = _write(folder, TUNED, "tuned.yaml")
        experiment, board, counts = run_experiment(path, str(folder / "out"), report=_quiet)
        records = [json.load(open(folder / "out" / "cells" / name)) for name in sorted(os.listdir(folder / "out" / "cells"))]
        yield folder, path, experiment, board, counts, records


def test_tune_seeds_search_the_grid_on_one_seed_and_run_the_choice_on_every_seed(tuned_run):
    folder, path, experiment, board, counts, records = tuned_run
    assert counts == {"cells": 7, "ran": 7, "failed": 0}  # 2 points on seed 1, the chosen on seeds 2 and 3; Pop x 3
    search = {r["grid_point"]["learning_rate"]: r["valid"]["mrr@20"] for r in records
              if r["label"] == "GRU4RecPlus-xe" and r["seed"] == 1}
    assert len(search) == 2 and search[0.01] != search[0.2]
    chosen = max(search, key=search.get)
    others = [r for r in records if r["label"] == "GRU4RecPlus-xe" and r["seed"] != 1]
    assert sorted(r["seed"] for r in others) == [2, 3] and all(r["grid_point"]["learning_rate"] == chosen for r in others)
    row = next(r for r in board["ml-100k"] if r["label"] == "GRU4RecPlus-xe")
    assert row["setting"] == f"learning_rate={chosen}" and row["seeds"] == 3 and row["grid_points"] == 2
    _, _, again = run_experiment(path, str(folder / "out"), report=_quiet)
    assert again == {"cells": 7, "ran": 0, "failed": 0}  # the search's cells stay on disk: nothing runs again


def test_without_eval_args_every_model_of_a_recbole_dataset_gets_the_sequential_protocol(tuned_run):
    folder, _, experiment, _, _, records = tuned_run
    assert experiment.default_protocol == ("ml-100k",)
    protocols = {r["label"]: json.loads(r["config"]["eval_args"]) for r in records}
    assert set(protocols) == {"GRU4RecPlus-xe", "Pop"}  # Pop, a general model, would be split at random otherwise
    assert all(p == {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": {"valid": "full", "test": "full"},
                     "group_by": "user"} for p in protocols.values())
    text = (folder / "out" / "leaderboard.md").read_text()
    assert ("Protocol: split LS valid_and_test, time order, grouped by user, ranked against every item (the board's "
            "default: the experiment names no eval_args).") in text


def test_each_cell_records_its_validation_curve_and_the_header_its_budget_machine_and_code(tuned_run):
    folder, _, _, _, _, records = tuned_run
    for record in records:
        assert record["stopped_by"] == "fixed" and record["epochs"] == 1  # one epoch, validated once
        assert len(record["valid_curve"]) == 1
        epoch, seconds, score = record["valid_curve"][0]
        assert epoch == 0 and seconds == pytest.approx(record["train_seconds"]) and score == record["valid"]["mrr@20"]
        assert record["machine"]["cores"] == os.cpu_count() and record["machine"]["threads"] == 1
    text = (folder / "out" / "leaderboard.md").read_text()
    assert "- Budget: grids of 1/2 points per model (searched on seed 1, the chosen point run on every seed;" in text
    assert f"- Machine: {os.cpu_count()} cores (" in text and "1 torch thread" in text
    assert "- Code: " in text and "(6 cells shown)" in text  # the chosen point x 3 seeds, Pop x 3


def test_the_picture_has_a_panel_of_validation_curves(tuned_run):
    from matplotlib import image

    folder, _, experiment, board, _, _ = tuned_run
    import matplotlib.pyplot as plt

    from recbole_gru4rec_plus.leaderboard import plot

    captured = {}
    real_savefig = plt.Figure.savefig

    def keep(figure, *args, **kwargs):
        captured["axes"] = figure.axes
        return real_savefig(figure, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plt.Figure, "savefig", keep)
        plot.plot_board(experiment, board, str(folder / "curves.png"))
    summary, curves = captured["axes"]
    assert "cumulative training time" in curves.get_xlabel()
    assert sorted(line.get_label() for line in curves.lines if not line.get_label().startswith("_")) == [
        "GRU4RecPlus-xe", "Pop"]
    assert len(curves.lines) == 6  # one curve per seed of the chosen setting, 3 seeds x 2 models
    assert image.imread(str(folder / "curves.png")).shape[0] > 500


def test_a_changed_default_reruns_a_cell_and_a_corrupt_cell_file_is_named_and_rerun(tuned_run):
    from recbole_gru4rec_plus.leaderboard.cells import CellStore

    folder, path, *_ = tuned_run
    store = CellStore(str(folder / "out"))
    names = sorted(os.listdir(folder / "out" / "cells"))
    broken, stale = (folder / "out" / "cells" / names[0]), (folder / "out" / "cells" / names[1])
    broken.write_text("{ not json")
    record = json.loads(stale.read_text())
    record["config"]["learning_rate"] = json.dumps(123.0)  # as if the default had been another one when it ran
    stale.write_text(json.dumps(record))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        messages = []
        _, _, counts = run_experiment(path, str(folder / "out"), report=messages.append)
    assert counts["ran"] == 2
    assert any(names[0] in message and "cannot be read" in message for message in messages)
    assert any(names[1] in message and "learning_rate" in message for message in messages)
    assert store.load_any(names[0][:-5])["status"] == "done"


# ---- statistics on planted values ------------------------------------------------------------


def test_mean_and_interval_by_hand():
    mean, half = mean_and_interval([0.2, 0.4, 0.3])
    assert mean == pytest.approx(0.3) and half == pytest.approx(4.302652729749464 * 0.1 / math.sqrt(3))
    assert mean_and_interval([0.5]) == (0.5, None)


def test_wilcoxon_gives_the_exact_p_of_planted_differences():
    # 10 targets, all differences positive and distinct: exact two-sided p = 2 / 2^10
    better = [0.5 + 0.01 * k for k in range(10)] + [0.0] * 5
    worse = [0.0] * 10 + [0.0] * 5
    assert paired_wilcoxon(better, worse) == pytest.approx(2 / 2**10)
    assert paired_wilcoxon([0.1, 0.2], [0.1, 0.2]) == 1.0


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def _record(label, seed, test, valid, rr):
    keys = [f"u{k}|i|0" for k in range(len(rr))]
    return {"dataset": "d", "label": label, "status": "done", "seed": seed, "grid_point": {}, "test": test,
            "valid": valid, "train_seconds": 1.0, "seconds_per_epoch": 0.5, "best_epoch": 1, "epochs_trained": 2,
            "stopped_by": "patience", "per_target": {"k": 20, "keys": keys, "reciprocal_rank": rr, "hit": [int(v > 0) for v in rr]}}


def test_the_board_tests_each_model_against_the_best_on_the_same_targets_with_holm():
    experiment = Experiment("x", {"d": {}}, {"A": {}, "B": {}, "C": {}}, [1], {}, ["MRR@20"])
    a = [0.5 + 0.01 * k for k in range(12)]
    b = [v - 0.1 for v in a[:6]] + a[6:]  # worse on 6 targets
    c = [0.0] * 12  # worse on all 12
    records = [_record("A", 1, {"mrr@20": np.mean(a)}, {"mrr@20": 0.4}, a),
               _record("B", 1, {"mrr@20": np.mean(b)}, {"mrr@20": 0.3}, b),
               _record("C", 1, {"mrr@20": 0.0}, {"mrr@20": 0.1}, c)]
    rows = {row["label"]: row for row in build_board(experiment, records)["d"]}
    assert rows["A"]["best"] and rows["A"]["p_vs_best"] is None
    # by hand: B is below A on 6 targets (the other 6 differences are 0 and dropped), C on all 12;
    # every difference has one sign, so the exact two-sided p is 2 / 2^n (the -0.1 differences
    # are not exact ties in floating point, so the exact test applies to B too)
    p_b, p_c = 2 / 2**6, 2 / 2**12
    # Holm over the two: the smaller p times 2, the larger times 1 (never below the first)
    assert rows["C"]["p_vs_best"] == pytest.approx(2 * p_c)
    assert rows["B"]["p_vs_best"] == pytest.approx(max(p_b, 2 * p_c))


def test_a_model_evaluated_on_other_targets_is_not_paired_with_the_best():
    experiment = Experiment("x", {"d": {}}, {"A": {}, "B": {}}, [1], {}, ["MRR@20"])
    a = [0.5 + 0.01 * k for k in range(12)]
    other = _record("B", 1, {"mrr@20": 0.1}, {"mrr@20": 0.1}, [0.1] * 10)
    other["per_target"]["keys"] = [f"user{k}|i|0" for k in range(10)]
    board = build_board(experiment, [_record("A", 1, {"mrr@20": np.mean(a)}, {"mrr@20": 0.4}, a), other])
    rows = {row["label"]: row for row in board["d"]}
    assert rows["B"]["other_targets"] and rows["B"].get("p_vs_best") is None
    assert "| B |  | 0.1000 | 1.0 | 0.50 | 2 / 2 | 1 | other targets | 1 |" in markdown(experiment, board)


def test_a_seed_stopped_by_the_epoch_limit_is_marked_cap():
    experiment = Experiment("x", {"d": {}}, {"A": {}, "B": {}}, [1, 2], {}, ["MRR@20"])
    a = [0.5 + 0.01 * k for k in range(12)]
    records = [_record(label, seed, {"mrr@20": 0.3}, {"mrr@20": 0.3}, a) for label in "AB" for seed in (1, 2)]
    records[3]["stopped_by"] = "cap"  # B, seed 2
    text = markdown(experiment, build_board(experiment, records))
    row_a, row_b = (next(line for line in text.splitlines() if line.startswith("| ") and f"| {label} |" in line)
                    for label in "AB")
    assert "`cap`" in row_b and "`cap`" not in row_a


def test_the_stop_reason_is_read_off_early_stopping():
    from types import SimpleNamespace

    from recbole_gru4rec_plus.trainer import RunCheckpointMixin

    def reason(cur_step, stopping_step=5, eval_step=1, epochs=300):
        trainer = SimpleNamespace(cur_step=cur_step, stopping_step=stopping_step, eval_step=eval_step, epochs=epochs)
        return RunCheckpointMixin.stopped_by.fget(trainer)

    assert reason(6) == "patience"  # RecBole stops once cur_step exceeds stopping_step
    assert reason(5) == "cap" and reason(0) == "cap"
    assert reason(0, eval_step=10, epochs=10) == "fixed" and reason(0, eval_step=0) == "fixed"  # validated once at most


# ---- bad experiment files --------------------------------------------------------------------

BAD = {
    "unknown model": (TINY.replace("Pop: {}", "Mystery: {model: NoSuchModel}"),
                      "ml-100k / Mystery / seed 1: unknown model 'NoSuchModel'"),
    "unknown top-level key": (TINY + "epochs: 3\n", "unknown top-level key 'epochs'"),
    "missing dataset": (TINY.replace("ml-100k: {user", "no-such-data: {user"), "dataset 'no-such-data'"),
    "duplicate labels": (TINY.replace("Pop: {}", "Pop: {}\n  Pop: {}"), "'Pop' is given twice"),
    "empty models": (TINY.split("models:")[0] + "models: {}\nseeds: [1]\n", "models is empty"),
    "empty seeds": (TINY.replace("seeds: [1, 2]", "seeds: []"), "seeds must be a non-empty list"),
    "different splits": (TINY.replace("Pop: {}", "Pop: {eval_args: {split: {RS: [0.8, 0.1, 0.1]}, order: RO, "
                                                 "mode: full, group_by: user}}"), "evaluated on"),
    "tune seeds not among the seeds": (TINY.replace("seeds: [1, 2]", "seeds: [1, 2]\ntune_seeds: [3]"),
                                       "tune_seeds [3] are not in seeds"),
    "a dataset entry that is not a mapping": (TINY.replace('ml-100k: {user_inter_num_interval: "[0,30)"}', "ml-100k: 5"),
                                              "dataset 'ml-100k' must map to options"),
    "a model entry that is a list": (TINY.replace("Pop: {}", "Pop: [1, 2]"), "model 'Pop' must map to options"),
    "bad option": (TINY.replace("n_sample: 16}", "n_sample: lots}", 1), "n_sample='lots' is not valid"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_experiment_is_one_error_line_before_any_cell_runs(tmp_path, case):
    text, fragment = BAD[case]
    path = _write(tmp_path, text)
    result = subprocess.run([sys.executable, LEADERBOARD, path, "--output", str(tmp_path / "out")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert lines[-1].startswith("error: ") and fragment in lines[-1], lines[-1]
    assert not (tmp_path / "out" / "cells").exists() or not os.listdir(tmp_path / "out" / "cells")
    assert not (tmp_path / "out" / "logs").exists()


def test_the_shipped_experiments_load():
    for name in ("ml-100k.yaml", "rsc15-100k.yaml", "ml-100k-quick.yaml", "diginetica.yaml", "ml-25m-mos.yaml"):
        experiment = load_experiment(os.path.join(ROOT, "experiments", name))
        assert experiment.models and experiment.seeds and experiment.metrics


def test_the_readme_example_experiment_runs_as_written_on_a_budget(tmp_path, monkeypatch):
    import yaml

    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        example = f.read().split("```yaml\n", 1)[1].split("```", 1)[0]
    data = yaml.safe_load(example)
    # the budget, nothing else: one epoch on the users with fewer than 30 ratings, two seeds
    data["datasets"]["ml-100k"]["user_inter_num_interval"] = "[0,30)"
    data["settings"].update(epochs=1, threads=1)
    data["seeds"] = [1, 2]
    path = tmp_path / "example.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    _, board, counts = run_experiment(str(path), str(tmp_path / "out"), report=_quiet)
    assert counts == {"cells": 13, "ran": 13, "failed": 0}  # 2 x 4 labels + the grid's 4 points on seed 1 + 1
    assert {row["label"] for row in board["ml-100k"] if row["seeds"] == 2} == set(data["models"])


def test_no_run_writes_the_board_from_the_cells_there_and_runs_none(tiny_run, tmp_path):
    import shutil

    folder, path, *_ = tiny_run
    shutil.copytree(folder / "out" / "cells", tmp_path / "cells")
    pop = [name for name in os.listdir(tmp_path / "cells")
           if json.load(open(tmp_path / "cells" / name))["label"] == "Pop"]
    os.remove(tmp_path / "cells" / pop[0])
    result = subprocess.run([sys.executable, LEADERBOARD, path, "--output", str(tmp_path), "--no-run"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "0 of 8 cells run now" in result.stdout and len(os.listdir(tmp_path / "cells")) == len(
        os.listdir(folder / "out" / "cells")) - 1
    row = next(line for line in (tmp_path / "leaderboard.md").read_text().splitlines() if "| Pop |" in line)
    assert row.rstrip().endswith("| 1 |")  # one seed of two: the board shows what is there


def test_labels_run_only_those_and_the_board_still_shows_every_label(tiny_run, tmp_path):
    folder, path, *_ = tiny_run
    result = subprocess.run([sys.executable, LEADERBOARD, path, "--output", str(tmp_path), "--labels", "Pop"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.load(open(tmp_path / "cells" / name)) for name in os.listdir(tmp_path / "cells")]
    assert sorted(r["label"] for r in records) == ["Pop", "Pop"]
    text = (tmp_path / "leaderboard.md").read_text()
    assert "| GRU4RecPlus |" in text and "not run yet" in text
    bad = subprocess.run([sys.executable, LEADERBOARD, path, "--output", str(tmp_path), "--labels", "Pope"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: --labels: 'Pope' is not")


def test_peak_rss_is_recorded_only_when_it_could_be_measured_for_the_cell_alone(tmp_path, monkeypatch):
    from recbole_gru4rec_plus.leaderboard import cells

    text = TINY.split("models:")[0] + "models:\n  Pop: {}\nseeds: [1]\n" + TINY.split("seeds: [1, 2]\n")[1]
    path = _write(tmp_path, text, "pop.yaml")
    monkeypatch.chdir(tmp_path)
    run_experiment(path, str(tmp_path / "measured"), report=_quiet)
    monkeypatch.setattr(cells, "peak_rss_reset", lambda: False)  # no /proc/self/clear_refs: the process's peak
    run_experiment(path, str(tmp_path / "unmeasured"), report=_quiet)
    measured, unmeasured = (json.load(open(next((tmp_path / name / "cells").iterdir())))
                            for name in ("measured", "unmeasured"))
    assert measured["peak_rss_mib"] > 0 and unmeasured["peak_rss_mib"] is None


def test_a_cell_key_does_not_depend_on_where_the_data_is(tmp_path):
    from recbole_gru4rec_plus.leaderboard.experiment import Cell, cell_key

    keys = []
    for folder in ("here", "there"):
        path = tmp_path / folder / "d.yaml"
        path.parent.mkdir()
        path.write_text(f"# imported from /somewhere/{folder}\ndata_path: '{tmp_path / folder}'\nMAX_ITEM_LIST_LENGTH: 50\n")
        keys.append(cell_key(Cell("d", "GRU4RecPlus", 1, "GRU4RecPlus", (str(path),), {"seed": 1})))
    assert keys[0] == keys[1]
    path.write_text("MAX_ITEM_LIST_LENGTH: 20\n")  # an option that changes what the cell computes
    assert cell_key(Cell("d", "GRU4RecPlus", 1, "GRU4RecPlus", (str(path),), {"seed": 1})) != keys[0]


def test_a_grid_whose_search_is_not_done_says_so_and_a_vanishing_p_is_printed_as_a_bound():
    experiment = Experiment("x", {"d": {}}, {"A": {}, "B": {"grid": {"learning_rate": [0.1, 0.2]}}}, [1], {}, ["MRR@20"])
    a = [0.5 + 0.001 * k for k in range(3000)]
    records = [_record("A", 1, {"mrr@20": 0.5}, {"mrr@20": 0.5}, a),
               {**_record("B", 1, {"mrr@20": 0.0}, {"mrr@20": 0.1}, [0.0] * 3000), "grid_point": {"learning_rate": 0.1}}]
    text = markdown(experiment, build_board(experiment, records))
    row = next(line for line in text.splitlines() if line.startswith("| 2 | B |"))
    assert "| 1 of 2 (search running) |" in row and "| < 1e-300 |" in row  # 3,000 targets all worse


def test_code_version_is_dirty_for_code_changes_not_for_boards(tmp_path, monkeypatch):
    """A sweep rewrites docs/boards as it goes: that must not mark its later cells '-dirty'."""
    from recbole_gru4rec_plus.leaderboard import cells

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "package").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "package" / "code.py").write_text("x = 1\n")
    (tmp_path / "docs" / "board.md").write_text("board\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "first")
    monkeypatch.setattr(cells, "_PACKAGE_DIR", str(tmp_path / "package"))
    clean = cells.code_version()
    assert clean and not clean.endswith("-dirty")
    (tmp_path / "docs" / "board.md").write_text("board, re-rendered\n")
    assert cells.code_version() == clean
    (tmp_path / "package" / "code.py").write_text("x = 2\n")
    assert cells.code_version() == clean + "-dirty"
