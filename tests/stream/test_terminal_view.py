"""The terminal replica without Kafka: features, identities, the saved file and its refusals."""

import struct

import pytest

from fraudstream.models.features import TerminalState
from fraudstream.stream.terminal_view import SnapshotError, TerminalView, encode_all, source_uid

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
    path = tmp_path / "state" / "terminal-view.bin"
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
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "bytes of events|JSONDecodeError"),
    (lambda p: p.write_bytes(p.read_bytes()[:-8]), "bytes of events"),
    (lambda p: p.write_bytes(b'{"v": 1, "topic": "topic"}'), "not a version-2"),
    (lambda p: p.write_bytes(p.read_bytes().replace(b'"v":2', b'"v":9')), "version 9"),
    (lambda p: p.write_bytes(p.read_bytes().replace(b'"n_fraud"', b'"n_fraux"')), "KeyError"),
    (lambda p: p.write_bytes(p.read_bytes().replace(b'"n_tx":[10,', b'"n_tx":[11,')),
     "differ|bytes of events|not sorted"),
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


def test_a_damaged_event_column_is_refused(tmp_path):
    path = tmp_path / "view.bin"
    _view().save(path, "topic")
    raw = bytearray(path.read_bytes())
    first_ts = slice(-8 * 101, -8 * 100)  # columns: 50 times, 50 identities, 1 fraud time
    raw[first_ts] = struct.pack("<d", float("nan"))  # a transaction time, not finite
    path.write_bytes(bytes(raw))
    with pytest.raises(SnapshotError, match="not finite"):
        TerminalView.load(path, "topic", DAY)
    raw[first_ts] = struct.pack("<d", T0 + 1e6)  # later than its terminal's next one
    path.write_bytes(bytes(raw))
    with pytest.raises(SnapshotError, match="not sorted"):
        TerminalView.load(path, "topic", DAY)


def test_events_applied_during_a_stepwise_save_are_replayed_exactly_once(tmp_path):
    """The worker serves scoring between chunks: events keep arriving during the save."""
    view = TerminalView(DAY)
    topic_events = []  # (offset, terminal, ts, uid) as the feed reads them
    for offset in range(300):
        event = (offset, f"t{offset % 40}", T0 + offset * 60.0, source_uid(0, offset))
        topic_events.append(event)
        view.add_transaction(*event[1:])
        view.offsets[0] = offset + 1
    steps = view.encode_steps("topic", chunk=7)
    data = next(steps)  # the offsets are taken with the first chunk
    assert data is None
    for offset in range(300, 360):  # arrive mid-save, some for terminals already encoded
        event = (offset, f"t{offset % 50}", T0 + offset * 60.0, source_uid(0, offset))
        topic_events.append(event)
        view.add_transaction(*event[1:])
        view.offsets[0] = offset + 1
        if data is None and offset % 5 == 0:
            data = next(steps)
    data = data or encode_all(steps)
    path = tmp_path / "view.bin"
    path.write_bytes(data)
    loaded = TerminalView.load(path, "topic", DAY)
    assert loaded.offsets == {0: 300}
    for offset, terminal, ts, uid in topic_events[loaded.offsets[0]:]:  # the restart's replay
        loaded.add_transaction(terminal, ts, uid)
    assert loaded.terminals == view.terminals
    for t in view.terminals:
        assert loaded.features(t, T0 + 3 * DAY) == view.features(t, T0 + 3 * DAY)


def test_an_event_whose_identity_cannot_be_saved_is_refused(tmp_path):
    """One odd record on the internal topic must not make every later save fail."""
    view = _view()
    odd = (b'{"tx": [["t9", %r, %d], ["t9", %r, -5]], "fraud": [["t9", %r, "%s"]]}'
           % (T0, 1 << 70, T0, T0, b"x" * 500))
    assert view.apply(0, 99, odd) == 0 and view.rejected == 3
    path = tmp_path / "view.bin"
    view.save(path, "topic")
    assert TerminalView.load(path, "topic", DAY).terminals == view.terminals
