"""The synthesis-model choice: from the settings to the trainer's cycle to the sampler."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from fraudstream.models.augmentation import (
    LEGIT_PER_FRAUD, conditioning_rows, legit_sample, synthesize_frauds)
from fraudstream.models.diffusion import ConditionalDiffusion, TabularDiffusion
from fraudstream.models.synthesis_study import (
    StudyConfig, compare_synthesis, format_study_table, study_variants, summarize_seeds)

FAST = dict(hidden=(16, 16), steps=30, n_steps=10, device="cpu")


def table(n: int, shift: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.lognormal(shift, 0.5, n), rng.random(n) < 0.3]).astype(float)


def test_legit_sample_draws_only_masked_rows_without_replacement():
    X = np.arange(200.0).reshape(100, 2)
    mask = np.arange(100) % 3 == 0
    rows = legit_sample(X, mask, 10, seed=0)
    assert rows.shape == (10, 2) and len(np.unique(rows[:, 0])) == 10
    assert set((rows[:, 0] / 2).astype(int) % 3) == {0}
    assert len(legit_sample(X, mask, 1000)) == mask.sum()  # fewer than asked: all of them


def test_conditioning_rows_per_model():
    X = np.zeros((1000, 2))
    legit = np.ones(1000, bool)
    assert conditioning_rows("frauds_only", X, legit, 50) is None
    assert len(conditioning_rows("conditional", X, legit, 50)) == LEGIT_PER_FRAUD * 50
    with pytest.raises(ValueError, match="unknown synthesis model"):
        conditioning_rows("gan", X, legit, 50)


def test_synthesize_frauds_fits_the_conditional_model_when_given_legit_rows():
    frauds, legit = table(60, 2.0, 0), table(240, 0.0, 1)
    kinds = ["continuous", "binary"]
    synth, model = synthesize_frauds(frauds, kinds, 50, X_legit=legit, guidance=2.0, **FAST)
    assert isinstance(model, ConditionalDiffusion) and model.guidance == 2.0
    assert model.class_counts_.tolist() == [240, 60]
    assert synth.shape == (50, 2) and set(np.unique(synth[:, 1])) <= {0.0, 1.0}
    _, plain = synthesize_frauds(frauds, kinds, 5, **FAST)
    assert type(plain) is TabularDiffusion


def small_window():
    """Four weeks, the last 7 days the holdout, frauds with larger amounts."""
    from fraudstream.models.window import WindowData
    rng = np.random.default_rng(0)
    n = 3000
    y = (rng.random(n) < 0.05).astype(np.int64)
    X = table(n, 0.0, 2)
    X[y == 1, 0] *= 4
    return WindowData(feature_names=["amount", "is_night"], X=X, y=y,
                      ts=np.sort(rng.uniform(0, 28 * 86400.0, n)),
                      card=np.array([f"c{i % 300}" for i in range(n)], dtype=object),
                      tx_id=np.array([f"t{i}" for i in range(n)], dtype=object),
                      score_online=rng.random(n))


def test_the_settings_choice_reaches_the_cycle_and_the_sampler(monkeypatch):
    import fraudstream.models.refresh as refresh
    from fraudstream.stream.config import Settings
    from fraudstream.stream.trainer import refresh_config

    assert refresh_config(Settings()).synthesis_model == "frauds_only"
    cfg = refresh_config(Settings(trainer_synthesis_model="conditional"))
    assert cfg.synthesis_model == "conditional"
    with pytest.raises(ValueError):
        Settings(trainer_synthesis_model="gan")

    data = small_window()
    X, y = data.X, data.y
    seen = []
    original = refresh.synthesize_frauds

    def spy(rows, kinds, n_synth, **kwargs):
        seen.append((rows, kwargs.get("X_legit")))
        return original(rows, kinds, n_synth, **{**kwargs, "hidden": (16,)})

    monkeypatch.setattr(refresh, "synthesize_frauds", spy)
    from fraudstream.models.batch import XGBParams
    config = refresh.RefreshConfig(min_frauds=10, min_fit_frauds=5, diffusion_steps=20, device="cpu",
                                   xgb=XGBParams(n_estimators=10), synthetic_ratio=0.5,
                                   max_c2st_auc=1.0, max_dcr_share=1.0,
                                   synthesis_model="conditional")
    result = refresh.run_cycle(data, None, config)
    (rows, legit), = seen
    assert isinstance(result.diffusion, ConditionalDiffusion)
    assert len(legit) == LEGIT_PER_FRAUD * len(rows)
    legit_rows = {r.tobytes() for r in X[y == 0]}
    assert all(r.tobytes() in legit_rows for r in legit)  # legitimate training rows only
    seen.clear()
    refresh.run_cycle(data, None, replace(config, synthesis_model="frauds_only"))
    assert seen[0][1] is None


def test_study_variants_and_a_tiny_comparison():
    config = StudyConfig(n_windows=1, train_days=3, delay_days=1, test_days=2, burn_in_days=0,
                         guidance=(0.0, 2.0), targets=("low", "clusters"),
                         diffusion_steps=20, conditional_steps=20, diffusion_hidden=(16,),
                         n_estimators=10, bootstrap_resamples=50, n_clusters=3, device="cpu")
    assert study_variants(config) == [
        "none", "frauds_only", "conditional_w0", "conditional_w2", "frauds_only+low",
        "frauds_only+clusters"]
    with pytest.raises(ValueError, match="target_generators"):
        StudyConfig(target_generators=("conditional_w5",))
    rng = np.random.default_rng(0)
    n = 2500
    tx = pd.DataFrame({"ts": np.sort(rng.uniform(0, 6 * 86400.0, n)),
                       "card_id": [f"c{i}" for i in rng.integers(0, 2000, n)],
                       "is_fraud": rng.random(n) < 0.06})
    X = table(n, 0.0, 3)
    X[tx["is_fraud"].to_numpy(), 0] *= 3
    features = pd.DataFrame({"tx_id": np.arange(n), "amount": X[:, 0], "is_night": X[:, 1]})
    result = compare_synthesis(tx, features, config)
    window = result["per_window"][0]
    n_synth = round(config.ratio * window["n_train_frauds"])
    for v in result["variants"][1:]:
        entry = window["variants"][v]
        assert 0 <= entry["quality"]["c2st_auc"] <= 1 and 0 <= entry["quality"]["dcr_share"] <= 1
        assert entry["gain"]["low"] <= entry["gain"]["estimate"] <= entry["gain"]["high"]
    assert sum(window["variants"]["frauds_only+clusters"]["clusters"]["chosen"]) == n_synth
    assert window["fits"]["conditional"]["n_legit"] == 4 * round(
        window["n_train_frauds"] - max(5, round(0.2 * window["n_train_frauds"])))
    seeds = summarize_seeds([result, result])
    assert seeds["summary"]["frauds_only"]["ledger"]["n"] == 2
    text = format_study_table(seeds)
    assert len(text.splitlines()) == 1 + len(result["variants"]) and "conditional_w2" in text


def test_the_cycle_keeps_novel_candidates_by_default_or_those_nearest_the_boundary(monkeypatch):
    import fraudstream.models.refresh as refresh
    from fraudstream.models.batch import XGBoostModel, XGBParams
    from fraudstream.models.targeting import select_hard
    from fraudstream.stream.config import Settings
    from fraudstream.stream.trainer import refresh_config

    cfg = refresh_config(Settings())
    assert (cfg.synthesis_target, cfg.oversample) == ("novel", 3)
    assert refresh_config(Settings(trainer_synthesis_target="none")).synthesis_target == "none"
    with pytest.raises(ValueError):
        Settings(trainer_synthesis_target="nearest")

    data = small_window()
    sampled, trained = [], []
    original_sample, original_train = refresh.synthesize_frauds, XGBoostModel.train

    def spy_sample(rows, kinds, n_synth, **kwargs):
        out = original_sample(rows, kinds, n_synth, **{**kwargs, "hidden": (16,)})
        sampled.append(out[0])
        return out

    def spy_train(X, y, *args, **kwargs):
        trained.append(original_train(X, y, *args, **kwargs))
        return trained[-1]

    monkeypatch.setattr(refresh, "synthesize_frauds", spy_sample)
    monkeypatch.setattr(refresh.XGBoostModel, "train", staticmethod(spy_train))
    config = refresh.RefreshConfig(min_frauds=10, min_fit_frauds=5, diffusion_steps=20, device="cpu",
                                   xgb=XGBParams(n_estimators=10), synthetic_ratio=0.5,
                                   max_c2st_auc=1.0, max_dcr_share=1.0)
    result = refresh.run_cycle(data, None, config)
    synthetic = result.report["synthetic"]
    n = synthetic["n_requested"]
    # The default: the candidates in sampling order, less the near-copies of the fit rows.
    assert synthetic["target"] == "novel" and synthetic["n_candidates"] == 3 * n
    candidates, = sampled
    novelty, kept = synthetic["novelty"], len(result.synthetic)
    assert 0 < kept <= n and novelty["dropped"] == novelty["looked_at"] - kept
    positions = [int(np.flatnonzero((candidates == row).all(axis=1))[0])
                 for row in result.synthetic]
    assert positions == sorted(positions)  # in sampling order

    sampled.clear()
    trained.clear()
    config = replace(config, synthesis_target="boundary")
    result = refresh.run_cycle(data, None, config)
    synthetic = result.report["synthetic"]
    assert synthetic["target"] == "boundary" and synthetic["n_candidates"] == 3 * n
    candidates, = sampled
    assert len(candidates) == 3 * n
    # The first model trained scores the candidates; its n hardest are the synthetic set.
    selector = trained[0]
    keep = select_hard(selector.predict_proba(candidates), n, threshold=config.threshold)
    np.testing.assert_array_equal(result.synthetic, candidates[keep])

    sampled.clear()
    result = refresh.run_cycle(data, None, replace(config, synthesis_target="none"))
    assert len(sampled[0]) == result.report["synthetic"]["n_requested"]
    np.testing.assert_array_equal(result.synthetic, sampled[0])
