#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dev.sh: the two commands a new user needs.
#   ./dev.sh broker [ipcbrokerd options]  set up, build the broker, start it in the foreground
#   ./dev.sh test                         set up, build, run every test (also under ASan+UBSan)
# Missing Debian packages are installed with apt-get when run as root;
# otherwise the exact apt-get line is printed and nothing else happens.
set -euo pipefail
cd "$(dirname "$0")"

# What the broker alone needs (./dev.sh broker); the tests need Criterion too.
BROKER_PACKAGES=(gcc make cmake pkg-config libuv1-dev libsystemd-dev)
PACKAGES=("${BROKER_PACKAGES[@]}" libcriterion-dev)
# systemd: systemd-socket-activate, systemd-analyze and a real user manager
# for tests/test_systemd.c (util-linux, essential, brings unshare).
# python3: tests/test_cli.c checks that JSON output parses (json module).
TEST_PACKAGES=(clang libclang-rt-14-dev systemd util-linux python3)
# qt6-base-dev: the Qt rows of the benchmark and tests/test_preload_qt.c.
TEST_PACKAGES+=(qt6-base-dev)
# What is shipped (tests/packaging): scdoc and man-db for the man pages, g++
# for the header as C++, dpkg-dev and file for cpack -G DEB (dpkg-shlibdeps);
# util-linux brings setpriv (examples) and flock.
TEST_PACKAGES+=(scdoc man-db g++ dpkg-dev file)
# libglib2.0-dev: examples/loop-glib.
TEST_PACKAGES+=(libglib2.0-dev)
# python/tests (the Python package's suite) and examples/python-numpy.
TEST_PACKAGES+=(python3-pytest python3-numpy)

need() {
        local missing=() p
        for p in "$@"; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
                        missing+=("$p")
        done
        [ ${#missing[@]} -eq 0 ] && return 0
        if [ "$(id -u)" -ne 0 ]; then
                echo "Missing packages. Install them with:" >&2
                echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
                exit 1
        fi
        echo "Installing: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

build() { # build DIR [cmake options...]
        local dir=$1
        shift
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
        cmake --build "$dir" -j"$(nproc)"
}

# Runs ctest in DIR and adds its counts to the totals.
PASSED=0 FAILED=0
run_ctest() {
        local dir=$1 out rc=0
        out=$(mktemp)
        ctest --test-dir "$dir" --output-on-failure 2>&1 | tee "$out" || rc=1
        local total failed
        total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$out" | tail -n1)
        failed=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$out" | tail -n1)
        rm -f "$out"
        PASSED=$((PASSED + ${total:-0} - ${failed:-0}))
        FAILED=$((FAILED + ${failed:-0}))
        [ -n "$total" ] || FAILED=$((FAILED + 1))
        return $rc
}

usage() {
        cat <<'EOF'
Usage: ./dev.sh COMMAND
  ./dev.sh broker [ipcbrokerd options]  set up, build the broker, start it in the foreground
  ./dev.sh test                         set up, build, run every test (also under ASan+UBSan)
  ./dev.sh --help                       this help
Missing Debian packages are installed with apt-get when run as root;
otherwise the exact apt-get line is printed and nothing else happens.
`./dev.sh broker --help` lists the broker's options (--system, --user, --socket PATH).
EOF
}

# Where ipcbrokerd will listen with these options (its own rule, see
# ipcbrokerd --help); empty if it will say why it cannot.
broker_socket() {
        local which="" sock="" a
        while [ $# -gt 0 ]; do
                a=$1
                shift
                case $a in
                -s | --socket) sock=${1:-}; shift || true ;;
                --socket=*) sock=${a#--socket=} ;;
                --system) which=system ;;
                --user) which=user ;;
                esac
        done
        if [ -n "$sock" ]; then echo "$sock"; return; fi
        if [ -z "$which" ] && [ -n "${IPCBROKER_SOCKET:-}" ]; then echo "$IPCBROKER_SOCKET"; return; fi
        [ -n "$which" ] || { [ "$(id -u)" -eq 0 ] && which=system || which=user; }
        if [ "$which" = system ]; then echo /run/ipcbroker/ipcbroker.sock
        elif [ -n "${XDG_RUNTIME_DIR:-}" ]; then echo "$XDG_RUNTIME_DIR/ipcbroker/ipcbroker.sock"; fi
}

case "${1:-}" in
broker)
        shift
        need "${BROKER_PACKAGES[@]}"
        # Only the broker and the CLI: no tests (no Criterion), no benchmark.
        mkdir -p build-broker
        printf 'Building ipcbrokerd and ipcbrokerctl in build-broker/ ... '
        if ! { cmake -S . -B build-broker -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIPCB_TESTS=OFF \
                -DIPCB_BENCH=OFF && cmake --build build-broker -j"$(nproc)"; } >build-broker/build.log 2>&1; then
                echo "failed:"
                tail -n 30 build-broker/build.log
                echo "(the whole log: build-broker/build.log)"
                exit 1
        fi
        echo done
        for a in "$@"; do case $a in -h | --help | -V | --version) exec ./build-broker/daemon/ipcbrokerd "$@" ;; esac; done
        sock=$(broker_socket "$@")
        ctl="$PWD/build-broker/client/ipcbrokerctl"
        if [ -n "$sock" ]; then
                case $sock in
                /run/ipcbroker/ipcbroker.sock)
                        who="the system broker: programs of every user reach it, unless they run a broker of their own" ;;
                "${XDG_RUNTIME_DIR:-/nonexistent}"/ipcbroker/ipcbroker.sock)
                        who="your own broker: your programs reach it before the system broker" ;;
                *)
                        who="reached by programs that are given this path"
                        ctl="$ctl --socket $sock" ;;
                esac
                cat <<EOF

The broker listens on $sock
($who).
Try it from another terminal:
  $ctl create demo 4K --mode 0644
  echo hello | $ctl write demo
  $ctl cat demo
  $ctl list
  $ctl rm demo
Ctrl-C stops it, and every object it holds goes with it, persistent ones too.

EOF
        fi
        exec ./build-broker/daemon/ipcbrokerd "$@"
        ;;
-h | --help | help)
        usage
        exit 0
        ;;
test)
        need "${PACKAGES[@]}" "${TEST_PACKAGES[@]}"
        status=0
        echo "== build and test (-Werror)"
        build build -DIPCB_WERROR=ON
        run_ctest build || status=1
        echo "== install check"
        if bash tests/install/check.sh build; then PASSED=$((PASSED + 1)); else
                FAILED=$((FAILED + 1)); status=1; fi
        echo "== build and test under ASan+UBSan"
        build build-asan -DIPCB_WERROR=ON -DIPCB_SANITIZE=ON -DIPCB_BENCH=OFF
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                run_ctest build-asan || status=1
        if command -v clang >/dev/null; then
                echo "== fuzz the decoder for ${IPCB_FUZZ_SECONDS:-60} s"
                CC=clang build build-fuzz -DIPCB_FUZZ=ON -DIPCB_BENCH=OFF
                mkdir -p build-fuzz/corpus
                if ./build-fuzz/tests/fuzz_proto -max_total_time="${IPCB_FUZZ_SECONDS:-60}" \
                        -print_final_stats=1 build-fuzz/corpus 2>build-fuzz/fuzz.log; then
                        tail -n 3 build-fuzz/fuzz.log
                        PASSED=$((PASSED + 1))
                else
                        tail -n 40 build-fuzz/fuzz.log
                        FAILED=$((FAILED + 1))
                        status=1
                fi
                echo "== fuzz the daemon's request handling for ${IPCB_FUZZ_DAEMON_SECONDS:-60} s"
                mkdir -p build-fuzz/corpus-daemon build-fuzz/seeds-daemon
                # Seeds are written by the target itself (one per handler family);
                # a crash lands in build-fuzz/crash-*, its log in build-fuzz/fuzz-daemon.log.
                if ./build-fuzz/tests/fuzz_daemon --write-seeds=build-fuzz/seeds-daemon &&
                        ./build-fuzz/tests/fuzz_daemon -max_total_time="${IPCB_FUZZ_DAEMON_SECONDS:-60}" \
                        -timeout=30 -print_final_stats=1 -artifact_prefix=build-fuzz/ \
                        build-fuzz/corpus-daemon build-fuzz/seeds-daemon 2>build-fuzz/fuzz-daemon.log; then
                        grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec)' \
                                build-fuzz/fuzz-daemon.log || true
                        PASSED=$((PASSED + 1))
                else
                        { grep -E '^fuzz_daemon:|ERROR|runtime error|SUMMARY|Test unit written' \
                                build-fuzz/fuzz-daemon.log || true; } | tail -n 40
                        echo "(the whole log: build-fuzz/fuzz-daemon.log)"
                        FAILED=$((FAILED + 1))
                        status=1
                fi
        fi
        echo "== benchmark (quick run: shows it works; see docs/performance.md)"
        if [ -x build/bench/ipcb_bench ]; then
                if ./build/bench/ipcb_bench --quick; then PASSED=$((PASSED + 1)); else
                        FAILED=$((FAILED + 1)); status=1; fi
        fi
        # ipcbrokerctl list (the table) against list --json, 10,000 objects: <= 2x.
        if python3 bench/ctl_list.py --build build --runs 3; then PASSED=$((PASSED + 1)); else
                FAILED=$((FAILED + 1)); status=1; fi
        if [ -x build/bench/ipcb_bench_scale ]; then
                if ./build/bench/ipcb_bench_scale --quick; then PASSED=$((PASSED + 1)); else
                        FAILED=$((FAILED + 1)); status=1; fi
        fi
        if [ -x build/preload/ipcb_bench_preload ]; then
                if ./build/preload/ipcb_bench_preload --quick; then PASSED=$((PASSED + 1)); else
                        FAILED=$((FAILED + 1)); status=1; fi
        fi
        if /usr/bin/python3 bench/python/bench.py --quick --build build; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); status=1; fi
        echo "== chaos soak for 1 minute (the long run: docs/performance.md, \"Soak\")"
        if [ "$(id -u)" -ne 0 ]; then
                echo "skipped: the soak needs root (clients of several uids, a private mount namespace)"
        elif bench/soak/run.sh --build build --minutes 1; then PASSED=$((PASSED + 1)); else
                FAILED=$((FAILED + 1)); status=1; fi
        echo
        echo "$PASSED passed, $FAILED failed"
        exit $status
        ;;
"")
        usage >&2
        exit 2
        ;;
*)
        echo "dev.sh: unknown command '$1'" >&2
        usage >&2
        exit 2
        ;;
esac
