"""The trainer's glue around promotion on evidence and the augmentation ledger, without Kafka:
the cycle's intervals reach the registry metadata, the metrics and `models list`; the ledger
carried in the metadata switches synthesis off and re-tests it."""

import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from fraudstream.models.days import DAY_S
from fraudstream.models.registry import MODEL_FILE
from fraudstream.models.window import WindowData
from fraudstream.stream import publisher
from fraudstream.stream.config import load_settings
from fraudstream.stream.registry_view import list_versions
from fraudstream.stream.trainer import Trainer, _Cycle, refresh_config
from trainer_helpers import simulated_window


@pytest.fixture(scope="module")
def data():
    return simulated_window()


class FakeProducer:
    def close(self, timeout=None):
        pass


@pytest.fixture
def trainer(tmp_path, monkeypatch):
    announced = []
    monkeypatch.setattr(publisher, "producer", lambda settings: FakeProducer())
    monkeypatch.setattr(publisher, "announce",
                        lambda settings, payload, kafka=None: announced.append(payload))
    settings = load_settings(
        model_registry=tmp_path / "registry", trainer_metrics_port=0, label_delay_days=7,
        trainer_min_frauds=10, trainer_min_fit_frauds=5, trainer_diffusion_steps=50, trainer_xgb_estimators=20,
        trainer_max_c2st_auc=1.0, trainer_max_dcr_share=1.0, trainer_device="cpu",
        trainer_synthetic_ratios=(0.0, 0.25), trainer_validation_days=4,
        trainer_bootstrap_resamples=200, trainer_ledger_cycles=3, trainer_ledger_min_cycles=1,
        trainer_synthesis_retest_every=2)
    t = Trainer(settings, metrics_registry=CollectorRegistry())
    t.announced = announced
    return t


def run_one(trainer, data):
    cycle = _Cycle(threading.Thread(target=lambda: None), time.time(), "request")
    trainer._run_cycle(cycle, data)
    assert cycle.outcome in ("promoted", "kept_champion"), cycle.outcome
    version = trainer.registry.versions()[-1]
    return trainer.registry.info(version).metadata


def sample(trainer, name, **labels):
    return trainer.metrics.registry.get_sample_value(name, labels or None)


def test_a_cycle_carries_its_intervals_to_the_metadata_metrics_and_listing(trainer, data, capsys):
    meta = run_one(trainer, data)
    report, ledger = meta["report"], meta["ledger"]
    decision = report["decision"]
    assert decision["confidence"] == 0.9 and decision["margin"] == 0.005
    # with no champion yet the online learner's scoring-time scores are the champion
    gain = report["comparisons"]["challenger_vs_champion"]
    assert gain["resamples"] == 200 and gain["low"] <= gain["estimate"] <= gain["high"]
    assert decision["promote"] == (gain["low"] > 0.005) == (meta["status"] == "champion")
    for bound in ("estimate", "low", "high"):
        assert sample(trainer, "fraudstream_trainer_ap_gain", comparison="challenger_vs_champion",
                      bound=bound) == pytest.approx(gain[bound])
    assert sample(trainer, "fraudstream_trainer_promotion_verdicts_total",
                  verdict=decision["verdict"]) == 1
    # the synthetic set passed the lenient gates: its gain is the ledger's first entry
    synthetic = report["comparisons"]["synthetic"]
    assert report["synthetic"]["verdict"] == "accepted" and synthetic is not None
    assert ledger["measured"] is True and ledger["synthesis"]["on"] is True
    assert ledger["synthesis"]["reason"] == "gathering evidence (0/1 measured cycles)"
    (entry,) = ledger["state"]["entries"]
    assert entry["estimate"] == synthetic["estimate"] and entry["ratio"] == synthetic["ratio"]
    assert ledger["summary"]["n"] == 1 and ledger["summary"]["gain"] == synthetic["estimate"]
    assert sample(trainer, "fraudstream_trainer_augmentation_ledger_cycles") == 1
    assert sample(trainer, "fraudstream_trainer_augmentation_ledger_ap_gain",
                  bound="low") == pytest.approx(synthetic["low"])
    assert sample(trainer, "fraudstream_trainer_synthesis_enabled") == 1
    assert sample(trainer, "fraudstream_trainer_synthetic_ratio") == report["synthetic"]["ratio"]
    # `fraudstream models list` shows both intervals and the ledger
    assert list_versions(trainer.registry) == 0
    out = capsys.readouterr().out
    assert f"{gain['estimate']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}]" in out
    assert f"{synthetic['estimate']:+.4f} [{synthetic['low']:+.4f}, {synthetic['high']:+.4f}] " \
           f"x{synthetic['ratio']:g}" in out
    assert "augmentation ledger: synthetic rows' AP gain" in out and "over the last 1 measured" in out


def test_a_ledger_without_gain_switches_synthesis_off_then_re_tests(trainer, data, caplog):
    # a previous version's ledger: one measured cycle with no gain
    no_gain = {"estimate": 0.0, "low": -0.02, "high": 0.02, "se": 0.01, "ratio": 1.0}
    trainer.registry.publish({MODEL_FILE: b"not loaded"}, {"ledger": {"state": {
        "entries": [no_gain], "off_cycles": 0}}})
    caplog.set_level("INFO", logger="fraudstream.trainer")
    off = run_one(trainer, data)
    assert off["report"]["diffusion"] is None and off["report"]["synthetic"]["verdict"] == "none"
    reason = off["report"]["synthetic"]["reason"]
    assert reason.startswith("synthesis off: ledger gain +0.0000") and "re-test in 1 cycle(s)" in reason
    assert off["ledger"]["synthesis"] == {"on": False, "reason": reason}
    assert off["ledger"]["state"] == {"entries": [no_gain], "off_cycles": 1}
    assert off["ledger"]["measured"] is False
    assert sample(trainer, "fraudstream_trainer_synthesis_enabled") == 0
    assert sample(trainer, "fraudstream_trainer_synthetic_ratio") == 0
    assert any("augmentation ledger: synthesis off" in r.getMessage() for r in caplog.records)
    # the next cycle re-tests: synthesis runs and is measured again
    retest = run_one(trainer, data)
    assert retest["ledger"]["synthesis"]["on"] is True
    assert retest["ledger"]["synthesis"]["reason"].startswith("re-test after 1 cycle(s) off")
    assert retest["report"]["diffusion"] is not None
    assert len(retest["ledger"]["state"]["entries"]) == 2
    assert retest["ledger"]["state"]["off_cycles"] == 0
    assert sample(trainer, "fraudstream_trainer_synthesis_enabled") == 1


def test_the_champions_staleness_comes_from_its_registry_metadata(trainer, data):
    """The trainer reads where the champion's training rows end from its version's metadata:
    on the same window the twin challenger is 0 days fresher (a tie keeps the champion); on
    the window 20 days later it is 20 days fresher, the champion is stale and the tie goes
    to the challenger (with FRAUDSTREAM_TRAINER_STALE_AFTER_DAYS=14; off by default)."""
    assert trainer.config.stale_after_days == 0.0
    trainer.config = refresh_config(trainer.settings.model_copy(
        update={"trainer_stale_after_days": 14.0}))
    first = run_one(trainer, data)
    trainer.registry.set_champion(first["version"], "test: a champion to compare with")
    same = run_one(trainer, data)["report"]["decision"]
    assert same["champion_staleness_days"] == 0.0 and same["champion_stale"] is False
    shifted = WindowData(data.feature_names, data.X, data.y, data.ts + 20 * DAY_S, data.card,
                         data.tx_id, data.score_online)
    later = run_one(trainer, shifted)
    decision = later["report"]["decision"]
    assert decision["champion_staleness_days"] == pytest.approx(20.0)
    assert decision["champion_stale"] is True and decision["stale_after_days"] == 14.0
    gain = later["report"]["comparisons"]["challenger_vs_champion"]
    assert decision["promote"] == (gain["high"] >= 0) == (later["status"] == "champion")
