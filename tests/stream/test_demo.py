"""`make demo` can be run again: everything it writes lives in the folder it wipes."""

from pathlib import Path

from fraudstream.stream.config import Settings
from fraudstream.stream.demo import demo_settings


def test_the_demo_keeps_worker_state_and_registry_in_its_wiped_folder(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "elsewhere", model_registry=tmp_path / "models")
    demo = demo_settings(settings, tmp_path / "demo", "127.0.0.1:9999")
    assert demo.broker_url == "kafka://127.0.0.1:9999"
    # Worker state outside the wiped folder held offsets of the last run's broker, and the
    # worker of the next run crashed on it (faust ConsistencyError), measured 2026-12-03.
    assert demo.worker_state_dir.is_relative_to(tmp_path / "demo")
    assert Path(demo.model_registry).is_relative_to(tmp_path / "demo")


def test_the_demo_offers_every_scenario_mix_of_the_simulator():
    import argparse

    from fraudstream.stream.cli import demo as demo_cli
    from fraudstream.stream.config import Settings
    from fraudstream.stream.simulator import MIXES

    parser = argparse.ArgumentParser()
    demo_cli.register(parser.add_subparsers(), Settings())
    choices = next(a for a in parser._subparsers._group_actions[0].choices["demo"]._actions
                   if a.dest == "mix").choices
    assert sorted(choices) == sorted(MIXES)
