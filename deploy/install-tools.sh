#!/usr/bin/env bash
# Installs the real tools the deployment tests and the benchmark run, into a cache outside the repository
# (default ~/.cache/fraudstream/tools, or $FRAUDSTREAM_TOOLS_DIR). Idempotent: a second run
# only checks the binaries answer. Prints one line per tool: NAME PATH.
#
#   prometheus, promtool  Debian's `prometheus` package, unpacked without installing it
#                         (apt-get download + dpkg-deb -x): no root, no service started.
#                         When apt has no package lists yet, runs `apt-get update` as root
#                         (or through passwordless sudo).
#   kcat, pv              Debian's `kcat` (with librdkafka1, libyajl2) and `pv`, unpacked the
#                         same way: the benchmark's low-CPU producer and its old pacer.
#   pace                  deploy/pace/pace.c built with `cc`: the benchmark's pacer (steady or
#                         Poisson arrivals, 1 ms ticks; pv releases 0.1 s of lines at once).
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

# Debian packages unpacked (apt-get download + dpkg-deb -x) into $TOOLS/NAME: no root, no
# service started. Usage: unpack_debs NAME CHECK PACKAGE...; CHECK is a binary under
# usr/bin that must answer --version (-V for kcat) afterwards.
unpack_debs() {
    local name=$1 check=$2; shift 2
    local dest="$TOOLS/$name"
    if [ -x "$dest/usr/bin/$check" ] && tool_answers "$dest" "$check"; then
        return
    fi
    command -v apt-get >/dev/null || die "apt-get not found: install $* yourself and put $check in $dest/usr/bin"
    local tmp
    tmp=$(mktemp -d "$TOOLS/.$name.XXXXXX")
    # apt's download sandbox user cannot write to a root-owned temp dir; that is only a warning.
    if ! (cd "$tmp" && apt-get download -q "$@" >&2 2>"$tmp/apt.err"); then
        as_root apt-get update -q >&2 \
            || die "apt-get download $* failed and apt-get update needs root: $(cat "$tmp/apt.err")"
        (cd "$tmp" && apt-get download -q "$@" >&2 2>"$tmp/apt.err") \
            || die "apt-get download $* failed: $(cat "$tmp/apt.err")"
    fi
    for deb in "$tmp"/*.deb; do
        dpkg-deb -x "$deb" "$tmp/root" || die "dpkg-deb could not unpack $deb"
    done
    tool_answers "$tmp/root" "$check" || die "the unpacked $check does not run"
    rm -rf "$dest"
    mv "$tmp/root" "$dest"
    rm -rf "$tmp"
}

# Unpacked libraries (librdkafka for kcat) are found through LD_LIBRARY_PATH.
tool_answers() {
    local root=$1 bin=$2 flag=--version
    [ "$bin" = kcat ] && flag=-V
    LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "$root/usr/bin/$bin" $flag >/dev/null 2>&1
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

unpack_debs prometheus promtool prometheus
# The benchmark's load generator: kcat produces, pv paces it (lines per second), both in C,
# so the machine's cores go to the service under test (fraudstream bench).
unpack_debs kcat kcat kcat librdkafka1 libyajl2
unpack_debs pv pv pv
# The pacer, rebuilt whenever its source is newer than the binary.
build_pace() {
    local src dest="$TOOLS/pace/pace"
    src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pace/pace.c"
    if [ -x "$dest" ] && [ "$dest" -nt "$src" ]; then
        return
    fi
    command -v cc >/dev/null || die "cc not found: the benchmark's pacer is built from deploy/pace/pace.c"
    mkdir -p "$TOOLS/pace"
    cc -O2 -Wall -o "$dest.tmp" "$src" -lm || die "cc could not build $src"
    mv "$dest.tmp" "$dest"
}

install_compose_spec
build_pace
echo "prometheus $TOOLS/prometheus/usr/bin/prometheus"
echo "promtool $TOOLS/prometheus/usr/bin/promtool"
echo "kcat $TOOLS/kcat/usr/bin/kcat"
echo "pv $TOOLS/pv/usr/bin/pv"
echo "pace $TOOLS/pace/pace"
echo "compose-spec $TOOLS/compose-spec/$COMPOSE_GO_VERSION/compose-spec"
