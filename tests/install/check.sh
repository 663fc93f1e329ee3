#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# check.sh BUILD_DIR: install the build into a temporary prefix, then build a
# consumer with pkg-config and with find_package(ipcbroker), and run it
# against the installed ipcbrokerd.  Prints one line; exits non-zero on failure.
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
echo "install check: pkg-config, find_package (shared and static), installed daemon and CLI: ok"
