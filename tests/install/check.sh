#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# check.sh BUILD_DIR: install the build into a temporary prefix, then build a
# consumer with pkg-config and with find_package(ipcbroker), and run it
# against the installed ipcbrokerd; check the installed systemd units; build a
# pkg-config client that runs with no LD_LIBRARY_PATH (an rpath), and every
# example on its own against the prefix (CMAKE_PREFIX_PATH, and pkg-config
# alone), running their tests.  Prints one line per part; exits non-zero on
# failure.
set -euo pipefail
build=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'kill "$daemon" 2>/dev/null || true; rm -rf "$tmp"' EXIT
daemon=

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(find "$tmp/prefix" -name ipcbroker.pc -printf '%h\n' | head -n1)
export PKG_CONFIG_PATH=$libdir
test -x "$tmp/prefix/bin/ipcbrokerd" && test -x "$tmp/prefix/bin/ipcbrokerctl"
test -f "$tmp/prefix/include/ipcbroker.h"
ls "$libdir"/../libipcbroker.so.0 "$libdir"/../libipcbroker.a >/dev/null

# The units, as installed for this prefix (given at install time, not at
# configure time): ExecStart= is the installed daemon, and systemd accepts
# them (systemd-analyze verify needs the binary at the ExecStart= path).
units=0
for kind in system user; do
        dir=$(find "$tmp/prefix" -path "*/systemd/$kind/ipcbroker.service" -printf '%h\n' | head -n1)
        test -n "$dir" && test -f "$dir/ipcbroker.socket"
        grep -qx "ExecStart=$tmp/prefix/bin/ipcbrokerd" "$dir/ipcbroker.service" || {
                echo "install check: $dir/ipcbroker.service: $(grep ExecStart= "$dir/ipcbroker.service")," \
                        "expected $tmp/prefix/bin/ipcbrokerd" >&2
                exit 1
        }
        if command -v systemd-analyze >/dev/null; then
                flag=; [ "$kind" = user ] && flag=--user
                mkdir -p "$tmp/rt"
                if ! out=$(XDG_RUNTIME_DIR=$tmp/rt systemd-analyze $flag verify \
                        "$dir/ipcbroker.socket" "$dir/ipcbroker.service" 2>&1); then
                        echo "install check: systemd-analyze $flag verify of the installed $kind units:" >&2
                        echo "$out" >&2
                        exit 1
                fi
                units=$((units + 1))
        fi
done

# pkg-config's flags plus an rpath to its libdir make a program that runs
# with no LD_LIBRARY_PATH and no ldconfig (README.md, "Install").
check_pkgconfig_rpath() {
        local libdir
        libdir=$(pkg-config --variable=libdir ipcbroker)
        cc -o "$tmp/pc-rpath" "$here/consumer.c" $(pkg-config --cflags --libs ipcbroker) \
                -Wl,-rpath,"$libdir"
        env -u LD_LIBRARY_PATH IPCBROKERD="$tmp/prefix/bin/ipcbrokerd" \
                IPCBROKERCTL="$tmp/prefix/bin/ipcbrokerctl" \
                sh "$src/examples/run-with-broker.sh" sh -c '"$0" "$IPCBROKER_SOCKET"' "$tmp/pc-rpath"
        # Without it the loader must not find the library, or the check
        # above proved nothing (unless one is installed system-wide).
        if ! ldconfig -p 2>/dev/null | grep -q 'libipcbroker\.so\.0 '; then
                cc -o "$tmp/pc-norpath" "$here/consumer.c" $(pkg-config --cflags --libs ipcbroker)
                if env -u LD_LIBRARY_PATH "$tmp/pc-norpath" >/dev/null 2>&1; then
                        echo "install check: a client without rpath found libipcbroker.so.0" >&2
                        return 1
                fi
        fi
        echo "install check: pkg-config client with -Wl,-rpath,\$(pkg-config --variable=libdir ipcbroker): ok"
}

# Every example builds on its own against the prefix and its tests pass
# against the installed ipcbrokerd: through the CMake package found with
# CMAKE_PREFIX_PATH, and (the package hidden) through pkg-config.
check_examples_standalone() {
        local dir name how log n=0
        # frozen-publisher's reader runs as uid 65534 (when root): it must
        # reach the installed library and its own binary.
        chmod 755 "$tmp"
        for dir in "$src"/examples/*/; do
                [ -f "$dir/CMakeLists.txt" ] || continue
                name=$(basename "$dir")
                # The event-loop examples share loop-common and build in the
                # project's tree only (examples/README.md).
                case $name in loop-*) continue ;; esac
                for how in cmake pkg-config; do
                        local opts=(-DCMAKE_PREFIX_PATH="$tmp/prefix")
                        [ "$how" = pkg-config ] && opts=(-DCMAKE_DISABLE_FIND_PACKAGE_ipcbroker=ON)
                        log=$tmp/ex-$name-$how.log
                        if ! { cmake -S "$dir" -B "$tmp/ex-$name-$how" "${opts[@]}" &&
                                cmake --build "$tmp/ex-$name-$how" &&
                                ctest --test-dir "$tmp/ex-$name-$how" --output-on-failure; } >"$log" 2>&1 ||
                                ! grep -q "100% tests passed, 0 tests failed out of [1-9]" "$log"; then
                                cat "$log" >&2
                                echo "install check: example $name ($how) failed" >&2
                                return 1
                        fi
                        n=$((n + 1))
                done
        done
        [ "$n" -ge 6 ] || { echo "install check: only $n example builds" >&2; return 1; }
        echo "install check: $n standalone example builds (find_package via CMAKE_PREFIX_PATH, pkg-config), their tests pass: ok"
}

# pkg-config, shared library
cc -o "$tmp/pc" "$here/consumer.c" $(pkg-config --cflags --libs ipcbroker)
LD_LIBRARY_PATH=$libdir/.. "$tmp/pc" >/dev/null

# find_package, shared and static
cmake -S "$here" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
LD_LIBRARY_PATH=$libdir/.. "$tmp/consumer/consumer_shared" >/dev/null
"$tmp/consumer/consumer_static" >/dev/null

# the installed daemon and CLI, end to end
"$tmp/prefix/bin/ipcbrokerd" --socket "$tmp/b.sock" 2>/dev/null &
daemon=$!
for _ in $(seq 100); do [ -S "$tmp/b.sock" ] && break; sleep 0.05; done
LD_LIBRARY_PATH=$libdir/.. "$tmp/pc" "$tmp/b.sock"
"$tmp/prefix/bin/ipcbrokerctl" --socket "$tmp/b.sock" list >/dev/null
kill "$daemon"
wait "$daemon"
# the Python package: installed under the prefix, it loads the library
# installed with it (_paths.py), not one from the build tree or the system
check_python() {
        local py=/usr/bin/python3 pydir pid
        [ -x "$py" ] || { echo "install check: no /usr/bin/python3, Python package not checked"; return 0; }
        pydir=$(find "$tmp/prefix" -path '*/dist-packages/ipcbroker/__init__.py' -printf '%h\n' | head -n1)
        test -n "$pydir" && test -f "$pydir/_paths.py" && test -f "$pydir/py.typed"
        "$tmp/prefix/bin/ipcbrokerd" --socket "$tmp/py.sock" 2>/dev/null &
        pid=$!
        for _ in $(seq 100); do [ -S "$tmp/py.sock" ] && break; sleep 0.05; done
        env -u IPCBROKER_LIBRARY PYTHONPATH="$(dirname "$pydir")" PYTHONDONTWRITEBYTECODE=1 \
                "$py" -c 'import sys, ipcbroker
assert ipcbroker.LIBRARY_PATH.startswith(sys.argv[1] + "/"), ipcbroker.LIBRARY_PATH
c = ipcbroker.Client(sys.argv[2])
with c.create("installed", 64) as s:
    s.buf[:2] = b"ok"
    assert bytes(c.open("installed", readonly=True).buf[:2]) == b"ok"
c.close()' "$tmp/prefix" "$tmp/py.sock"
        kill "$pid"
        wait "$pid"
        echo "install check: the Python package, in $(basename "$(dirname "$pydir")"), loads the library installed with it: ok"
}
check_python
echo "install check: pkg-config, find_package (shared and static), installed daemon and CLI," \
        "units for the install prefix (verified by systemd-analyze: $units of 2 kinds): ok"
check_pkgconfig_rpath
check_examples_standalone
