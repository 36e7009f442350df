#!/usr/bin/env bash
# Installs the real tools the deployment tests run, into a cache outside the repository
# (default ~/.cache/fraudstream/tools, or $FRAUDSTREAM_TOOLS_DIR). Idempotent: a second run
# only checks the binaries answer. Prints one line per tool: NAME PATH.
#
#   prometheus, promtool  Debian's `prometheus` package, unpacked without installing it
#                         (apt-get download + dpkg-deb -x): no root, no service started.
#                         When apt has no package lists yet, runs `apt-get update` as root
#                         (or through passwordless sudo).
#   compose-spec          the Compose Specification's own validator (the compose-go
#                         library docker compose uses: schema, interpolation, consistency),
#                         built with `go install` from the Go module proxy.
#
# Fails loudly (non-zero, with the reason) when a tool cannot be had: the tests never skip.
set -euo pipefail

TOOLS=${FRAUDSTREAM_TOOLS_DIR:-$HOME/.cache/fraudstream/tools}
COMPOSE_GO_VERSION=v2.16.2
mkdir -p "$TOOLS"

die() { echo "install-tools: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"
    else return 1
    fi
}

install_prometheus() {
    local dest="$TOOLS/prometheus"
    if [ -x "$dest/usr/bin/promtool" ] && "$dest/usr/bin/promtool" --version >/dev/null 2>&1; then
        return
    fi
    command -v apt-get >/dev/null || die "apt-get not found: install Prometheus 2.x yourself and put promtool and prometheus in $dest/usr/bin"
    local tmp
    tmp=$(mktemp -d "$TOOLS/.prometheus.XXXXXX")
    # apt's download sandbox user cannot write to a root-owned temp dir; that is only a warning.
    if ! (cd "$tmp" && apt-get download -q prometheus >&2 2>"$tmp/apt.err"); then
        as_root apt-get update -q >&2 \
            || die "apt-get download prometheus failed and apt-get update needs root: $(cat "$tmp/apt.err")"
        (cd "$tmp" && apt-get download -q prometheus >&2 2>"$tmp/apt.err") \
            || die "apt-get download prometheus failed: $(cat "$tmp/apt.err")"
    fi
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root" || die "dpkg-deb could not unpack $(ls "$tmp"/*.deb)"
    "$tmp/root/usr/bin/promtool" --version >/dev/null || die "the unpacked promtool does not run"
    rm -rf "$dest"
    mv "$tmp/root" "$dest"
    rm -rf "$tmp"
}

install_compose_spec() {
    local dest="$TOOLS/compose-spec/$COMPOSE_GO_VERSION"
    if [ -x "$dest/compose-spec" ]; then
        return
    fi
    command -v go >/dev/null || die "go not found: the compose file is validated with compose-go's validator, built with go install"
    mkdir -p "$dest"
    # The module's validator command is its package `cmd`, so the binary is named `cmd`.
    GOBIN="$dest" go install "github.com/compose-spec/compose-go/v2/cmd@$COMPOSE_GO_VERSION" \
        || die "go install github.com/compose-spec/compose-go/v2/cmd@$COMPOSE_GO_VERSION failed"
    mv "$dest/cmd" "$dest/compose-spec"
}

install_prometheus
install_compose_spec
echo "prometheus $TOOLS/prometheus/usr/bin/prometheus"
echo "promtool $TOOLS/prometheus/usr/bin/promtool"
echo "compose-spec $TOOLS/compose-spec/$COMPOSE_GO_VERSION/compose-spec"
