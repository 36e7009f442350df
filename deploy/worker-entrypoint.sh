#!/bin/sh
# Entrypoint of the compose workers (docker-compose.yml): one online-learner checkpoint and
# one local state folder per replica, named the same again when a replica is replaced.
#
# The checkpoint is $FRAUDSTREAM_MODEL_REGISTRY/online/$FRAUDSTREAM_WORKER_ID.pkl, on a volume
# every replica shares, and the state folder (RocksDB tables, which RocksDB locks, and the
# terminal replica) $FRAUDSTREAM_STATE_DIR/$FRAUDSTREAM_APP_ID/$FRAUDSTREAM_WORKER_ID, on the
# workers' state volume; `--scale worker=N` gives all replicas the same environment, so the
# name is chosen here: the lowest slot N whose lock file no live replica holds becomes
# compose-worker-N. The lock (flock) is held by the worker process itself (fd 9 survives the
# exec) and the kernel releases it when that process ends, so a restarted or recreated
# replica takes a free slot again and starts warm from its checkpoint and state, and two
# live replicas never use the same file or folder. An explicit FRAUDSTREAM_WORKER_ID wins
# (one replica only).
set -eu

if [ -n "${FRAUDSTREAM_WORKER_ID:-}" ]; then
    exec fraudstream "$@"
fi
online="${FRAUDSTREAM_MODEL_REGISTRY:?FRAUDSTREAM_MODEL_REGISTRY is not set}/online"
mkdir -p "$online"
slot=1
while :; do
    exec 9>"$online/.compose-worker-$slot.lock"
    if flock -n 9; then
        break
    fi
    slot=$((slot + 1))
    if [ "$slot" -gt 1024 ]; then
        echo "worker-entrypoint: no free slot in $online (flock fails on this volume?)" >&2
        exit 1
    fi
done
export FRAUDSTREAM_WORKER_ID="compose-worker-$slot"
exec fraudstream "$@"
