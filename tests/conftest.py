import os

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def small_cells():
    """A few hundred synthetic cells (B, T4), generated once per session."""
    from edgekd.data import synthetic

    x, y = synthetic.generate(400, seed=5, classes=(0, 1))
    return x, y


def write_recipe(path, text: str):
    path.write_text(text)
    return path
