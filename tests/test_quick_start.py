"""The Python API: reproducibility, checkpoints, RecBole's name lookup."""

from recbole.utils import get_model

from recbole_gru4rec_plus import GRU4RecPlus
from recbole_gru4rec_plus.quick_start import load_data_and_model, run
from recbole_gru4rec_plus.trainer import get_trainer_class

QUICK = {"epochs": 1, "show_progress": False, "state": "WARNING", "user_inter_num_interval": "[0,40)"}


def test_recboles_name_lookup_finds_the_plugin_model():
    assert get_model("GRU4RecPlus") is GRU4RecPlus


def test_two_runs_with_the_same_seed_give_the_same_metrics_and_another_seed_does_not(in_tmp_dir):
    first = run("GRU4RecPlus", "ml-100k", config_dict={**QUICK, "seed": 7}, saved=False)
    second = run("GRU4RecPlus", "ml-100k", config_dict={**QUICK, "seed": 7}, saved=False)
    other = run("GRU4RecPlus", "ml-100k", config_dict={**QUICK, "seed": 8}, saved=False)
    assert first["test_result"] == second["test_result"]
    assert first["test_result"] != other["test_result"]


def test_a_saved_model_loads_back_and_evaluates_the_same_on_current_torch(in_tmp_dir):
    result = run("GRU4RecPlus", "ml-100k", config_dict=QUICK, saved=True)
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(result["saved_model_file"])
    assert isinstance(model, GRU4RecPlus)
    trainer = get_trainer_class(type(model))(config, model)
    again = trainer.evaluate(test_data, load_best_model=False)
    assert dict(again) == dict(result["test_result"])
