import os

import pytest
import torch

torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")  # real sample files shipped with the repository (see its README)


@pytest.fixture
def in_tmp_dir(tmp_path, monkeypatch):
    """RecBole writes log/, log_tensorboard/ and saved/ into the working directory: keep them out of the repo."""
    monkeypatch.chdir(tmp_path)
    return tmp_path

