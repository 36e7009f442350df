"""The terminal replica without Kafka: features, identities, the saved file and its refusals."""

import pytest

from fraudstream.models.features import TerminalState
from fraudstream.stream.terminal_view import SnapshotError, TerminalView, source_uid

DAY = 86400.0
T0 = 1767225600.0


def _view(delay=DAY):
    view = TerminalView(delay)
    for i in range(50):
        view.add_transaction(f"t{i % 5}", T0 + i * 3600.0, source_uid(i % 3, i))
    view.add_fraud("t1", T0 + 3600.0, "tx1")
    view.offsets = {0: 17, 3: 4}
    return view


def test_a_saved_replica_loads_equal_and_resumes_at_its_offsets(tmp_path):
    view = _view()
    path = tmp_path / "state" / "terminal-view.json"
    size = view.save(path, "app-terminal-events")
    assert size == path.stat().st_size and [p.name for p in path.parent.iterdir()] == [path.name]
    loaded = TerminalView.load(path, "app-terminal-events", DAY)
    assert loaded.offsets == {0: 17, 3: 4}
    assert set(loaded.terminals) == set(view.terminals)
    for t, state in view.terminals.items():
        assert loaded.terminals[t] == state
        assert loaded.features(t, T0 + 5 * DAY) == view.features(t, T0 + 5 * DAY)
    # identities survive too: a transaction read again from the topic is not counted twice
    assert not loaded.add_transaction("t0", T0, source_uid(0, 0))
    assert not loaded.add_fraud("t1", T0 + 3600.0, "tx1")


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "JSONDecodeError"),
    (lambda p: p.write_bytes(b'{"v": 99}'), "version"),
    (lambda p: p.write_bytes(p.read_bytes().replace(b'"fraud_ts"', b'"fraud_tz"')), "KeyError"),
])
def test_a_damaged_file_is_refused_with_a_reason(tmp_path, damage, reason):
    path = tmp_path / "view.json"
    _view().save(path, "topic")
    damage(path)
    with pytest.raises(SnapshotError, match=reason):
        TerminalView.load(path, "topic", DAY)


def test_a_file_of_another_topic_or_label_delay_is_refused(tmp_path):
    path = tmp_path / "view.json"
    _view().save(path, "topic")
    with pytest.raises(SnapshotError, match="topic"):
        TerminalView.load(path, "other-topic", DAY)
    with pytest.raises(SnapshotError, match="label delay"):  # its windows ended elsewhere
        TerminalView.load(path, "topic", 2 * DAY)


def test_a_replica_prunes_terminals_it_only_hears_about():
    """A replica never queries most terminals (another worker scores their cards): they must
    still age out, or memory would grow with the history."""
    view = TerminalView(DAY)
    view.add_transaction("quiet", T0, 1)
    for i in range(40):  # a later transaction at the same terminal, 40 days on
        view.add_transaction("quiet", T0 + (i + 1) * DAY, 100 + i)
    assert len(view.terminals["quiet"]) <= 32  # horizon: 1 + 30 days
    assert view.terminals["quiet"].newest == T0 + 40 * DAY


def test_terminal_state_identities_make_order_irrelevant():
    events = [(T0 + (i % 7) * 600.0, i) for i in range(30)]
    a, b = TerminalState(DAY), TerminalState(DAY)
    for ts, uid in events:
        a.add_transaction(ts, uid)
    for ts, uid in reversed(events + events):  # reversed, and every one twice
        b.add_transaction(ts, uid)
    assert a == b and len(a) == 30
