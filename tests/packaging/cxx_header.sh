#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# cxx_header.sh SRC_DIR LIBRARY [FLAGS...]: compile cxx_header.cpp with
# g++ -std=c++17 -Wall -Wextra -pedantic -Werror against client/ipcbroker.h,
# link LIBRARY, and run it against a real broker (run-with-broker.sh; the
# caller sets $IPCBROKERD and $IPCBROKERCTL).  Exit 77 (skipped) without g++.
set -eu
src=$1 lib=$2
shift 2
cxx=${CXX:-g++}
if ! command -v "$cxx" >/dev/null 2>&1; then
        echo "cxx_header: no C++ compiler ($cxx): skipped (apt-get install g++)"
        exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$cxx" -std=c++17 -Wall -Wextra -pedantic -Werror "$@" -I"$src/client" \
        -o "$tmp/cxx_header" "$src/tests/packaging/cxx_header.cpp" "$lib" -pthread
"$src/examples/run-with-broker.sh" "$tmp/cxx_header"
