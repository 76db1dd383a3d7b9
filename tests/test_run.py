"""End to end through run/run.py, as a user runs it."""

import math
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, DATA

RUN = os.path.join(ROOT, "run", "run.py")
FAST = ["--epochs=1", "--show_progress=False", "--threads=1"]


def run(*args, cwd):
    return subprocess.run([sys.executable, RUN, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_gru4recplus_trains_and_evaluates_on_ml_100k(in_tmp_dir):
    result = run("--model=GRU4RecPlus", "--dataset=ml-100k", *FAST, cwd=in_tmp_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test: {'recall@10'" in result.stdout
    assert "mrr@20" in result.stdout
    # the logged configuration says what runs, and the counts what they count
    log = result.stderr
    assert re.search(r"optimizer = Adagrad with momentum 0\.0 on the rows each step touches", log)
    assert "negatives = the other rows' targets + 2048 shared samples drawn ∝ support^0.5" in log
    assert re.search(r"final_act = elu-0\.5\b", log) and re.search(r"device = cpu\b", log)
    for absent in ("learner =", "train_neg_sample_args =", "use_gpu =", "weight_decay ="):
        assert absent not in log, absent
    assert "943 users, 1682 items, 100000 interaction rows" in log
    result = run("--model=GRU4RecPlus", "--dataset=ml-100k", "--epochs=1", "--show_progress=False", "--no_save",
                 "--user_inter_num_interval=[0,30)", cwd=in_tmp_dir)  # no --threads: the default holds under load
    assert result.returncode == 0 and re.search(r"\bthreads = 1\b", result.stderr)
    saved = sorted(os.listdir(in_tmp_dir / "saved"), key=lambda name: name.endswith("-last.pth"))
    assert len(saved) == 2 and saved[1].endswith("-last.pth")
    # what resuming needs and no more: the sampler's generator and position, not its cache of
    # 1024 x 2048 ids (16.8 MB); the best model without optimizer state
    for name in saved:
        assert os.path.getsize(in_tmp_dir / "saved" / name) <= 3 * 2**20, name
    from recbole_gru4rec_plus.trainer import load_checkpoint

    best, last = (load_checkpoint(str(in_tmp_dir / "saved" / name)) for name in saved)
    assert "optimizer" not in best and "optimizer" in last and "random_states" in last


def test_builtin_gru4rec_runs_through_the_same_pipeline(in_tmp_dir):
    result = run("--model=GRU4Rec", *FAST, "--hidden_size=32", "--embedding_size=32", cwd=in_tmp_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test: {'recall@10'" in result.stdout
    assert "learner = adam" in result.stderr and "use_gpu =" not in result.stderr  # what RecBole's model does use


def test_config_files_and_command_line_layer_over_the_model_yaml(in_tmp_dir):
    (in_tmp_dir / "a.yaml").write_text("loss: cross-entropy\nfinal_act: linear\nlayers: [16]\n")
    (in_tmp_dir / "b.yaml").write_text("layers: [8]\n")
    result = run("--config_files=a.yaml,b.yaml", "--n_sample=4", *FAST, cwd=in_tmp_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "CrossEntropyLoss" in log and "GRULayer" in log
    assert "Embedding(1683, 8)" in log  # b.yaml wins over a.yaml
    assert "n_sample = 4" in log


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model=GRU4RecPlusPlus"], "unknown model 'GRU4RecPlusPlus' (names are case-sensitive class names); did you "
                                      "mean GRU4RecPlus"),
        (["--loss=hinge"], "loss='hinge' is not valid: expected one of top1, bpr"),
        (["--sample_alpha=2"], "sample_alpha"),
        (["--n_sample=-5"], "n_sample"),
        (["--dataset=no-such-data"], "dataset 'no-such-data' not found"),
        (["--config_files=missing.yaml"], "config file 'missing.yaml' does not exist"),
        (["--threads=0"], "threads=0 is not valid: expected an integer >= 1"),
    ],
)
def test_bad_input_gives_one_clear_line_and_a_nonzero_exit(in_tmp_dir, args, message):
    result = run(*FAST, *args, cwd=in_tmp_dir)
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and message in last_line
    assert "Traceback" not in result.stderr


def test_help_shows_the_usage_line_and_documents_every_flag(in_tmp_dir):
    result = run("--help", cwd=in_tmp_dir)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: run.py [-h] [--model MODEL] [--dataset DATASET]")
    for flag in ("--model", "--dataset", "--config_files", "--threads", "--no_save", "--key=value"):
        assert flag in result.stdout


def test_in_batch_negatives_only_train_with_a_finite_loss_on_ml_100k(in_tmp_dir):
    result = run("--n_sample=0", "--epochs=2", "--show_progress=False", "--threads=1", "--state=INFO", cwd=in_tmp_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [float(value) for value in re.findall(r"train loss: ([^\]\s]+)\]", result.stdout + result.stderr)]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)


def test_the_originals_published_settings_ship_and_load_by_their_short_names(in_tmp_dir):
    from recbole_gru4rec_plus.config import PluginConfig

    config = PluginConfig("GRU4RecPlus", "ml-100k", ["paper/gru4rec_rsc15.yaml"], {})
    assert (config["loss"], config["logq"], config["dropout_p_hidden"], config["train_batch_size"]) == ("cross-entropy", 1.0, 0.4, 32)
    for name in ("rsc15", "yoochoose", "rees46", "coveo", "retailrocket", "diginetica"):
        assert PluginConfig("GRU4RecPlus", "ml-100k", [f"paper/gru4rec_{name}.yaml"], {})["epochs"] == 10


def test_a_movielens_release_is_converted_once_then_trained_on(in_tmp_dir):
    release = in_tmp_dir / "data" / "ml-latest-small"
    release.mkdir(parents=True)
    (release / "ratings.csv").write_bytes(open(os.path.join(DATA, "ml-latest-small", "ratings.csv"), "rb").read())
    result = run("--dataset=ml-latest-small", "--data_path=data/", "--n_sample=64", *FAST, cwd=in_tmp_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (release / "ml-latest-small.inter").is_file()
    assert "test: {'recall@10'" in result.stdout


def test_a_missing_movielens_release_says_what_to_download_and_where(in_tmp_dir):
    result = run("--dataset=ml-25m", "--data_path=data/", *FAST, cwd=in_tmp_dir)
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert "https://files.grouplens.org/datasets/movielens/ml-25m.zip" in last_line
    assert str(in_tmp_dir / "data") in last_line


def test_the_end_of_run_hint_says_what_is_true(in_tmp_dir):
    small = ["--show_progress=False", "--threads=1", "--user_inter_num_interval=[0,30)", "--n_sample=16"]
    # early stopping decided: resuming would stop again at once, so the hint names stopping_step
    stopped = run("--epochs=40", "--stopping_step=1", "--learning_rate=0.5", *small, cwd=in_tmp_dir)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "early stopping ended training after epoch" in stopped.stdout and "--stopping_step" in stopped.stdout
    assert "--resume" not in stopped.stdout
    # the epoch limit ended it: more epochs continue it
    capped = run("--epochs=1", *small, cwd=in_tmp_dir)
    assert re.search(r"to train further: python run/run.py --resume=\S+-last\.pth --epochs=11", capped.stdout)
