"""Fixtures shared by the model tests."""

import pytest
import torch

from fraudstream.models.batch import XGBParams
from fraudstream.models.days import DAY_S
from fraudstream.models.evaluation import EvaluationConfig, evaluate_augmentation
from fraudstream.models.features import compute_features
from fraudstream.stream.simulator import SimulationConfig, simulate


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small MLPs gain nothing from more threads, and the test machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_evaluation() -> dict:
    """One small augmentation study (two windows), shared by its tests and its report's."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        df = simulate(SimulationConfig(
            n_customers=400, n_terminals=800, n_days=15, seed=1,
            compromised_terminals_per_day=1, compromised_customers_per_day=1,
        ))  # fmt: skip
        config = EvaluationConfig(
            n_windows=2, burn_in_days=2, train_days=5, delay_days=2, test_days=3,
            ratios=(1, 3), xgb=XGBParams(n_estimators=20, max_depth=3), diffusion_steps=30,
            diffusion_hidden=(16, 16), extra_diffusion_params={"n_steps": 20},
            device="cpu", seed=0, plot_samples=50,
        )  # fmt: skip
        messages: list[str] = []
        features = compute_features(df, config.delay_days * DAY_S)
        result = evaluate_augmentation(df, features, config, progress=messages.append)
    finally:
        torch.set_num_threads(before)
    return {"result": result, "messages": messages, "config": config}
