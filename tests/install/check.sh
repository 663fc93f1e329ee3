#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# check.sh BUILD_DIR: install the build into a temporary prefix, then build a
# consumer with pkg-config and with find_package(ipcbroker), and run it
# against the installed ipcbrokerd; check the installed systemd units.  Prints
# one line; exits non-zero on failure.
set -euo pipefail
build=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
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
echo "install check: pkg-config, find_package (shared and static), installed daemon and CLI," \
        "units for the install prefix (verified by systemd-analyze: $units of 2 kinds): ok"
