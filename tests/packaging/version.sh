#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# version.sh SRC BUILD: the version is stated in one place of the sources
# (IPCB_VERSION_STRING in client/ipcbroker.h), and everything built says
# the same: ipcbrokerd --version, ipcbrokerctl --version, ipcb_version(),
# the soname's file, pkg-config, the Python package (when python3 runs).
set -eu
src=$(realpath "$1") build=$(realpath "$2")
v=$(sed -n 's/^#define IPCB_VERSION_STRING "\(.*\)"$/\1/p' "$src/client/ipcbroker.h")
fail=0
bad() { echo "version: $*" >&2; fail=1; }
[ -n "$v" ] || { echo "version: no IPCB_VERSION_STRING in ipcbroker.h" >&2; exit 1; }
echo "version: $v"

# No other source states it (the changelog and docs may mention it).
if command -v git >/dev/null 2>&1 && git -C "$src" rev-parse >/dev/null 2>&1; then
        others=$(git -C "$src" grep -l -F "\"$v\"" -- ':!client/ipcbroker.h' ':!*.md' || true)
        others="$others $(git -C "$src" grep -l -E "VERSION +$v|version *= *.$v" -- ':!*.md' || true)"
        others=$(echo $others)
        [ -z "$others" ] || bad "also stated in: $others"
fi

out=$("$build/daemon/ipcbrokerd" --version)
[ "$out" = "ipcbrokerd $v" ] || bad "ipcbrokerd --version says '$out'"
out=$("$build/client/ipcbrokerctl" --version)
[ "$out" = "ipcbrokerctl $v" ] || bad "ipcbrokerctl --version says '$out'"
[ -e "$build/client/libipcbroker.so.$v" ] || bad "no libipcbroker.so.$v in $build/client"
out=$(PKG_CONFIG_PATH="$build/client" pkg-config --modversion ipcbroker 2>/dev/null || echo none)
[ "$out" = "$v" ] || bad "pkg-config says '$out'"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/v.c" <<'C'
#include <ipcbroker.h>
#include <stdio.h>
int main(void) {
        puts(ipcb_version());
        return 0;
}
C
cc -I"$src/client" "$tmp/v.c" -o "$tmp/v" -L"$build/client" -lipcbroker -Wl,-rpath,"$build/client"
out=$("$tmp/v")
[ "$out" = "$v" ] || bad "ipcb_version() says '$out'"

if command -v python3 >/dev/null 2>&1; then
        out=$(cd "$src/python" && IPCBROKER_LIBRARY="$build/client/libipcbroker.so" \
                python3 -c 'import ipcbroker; print(ipcbroker.__version__)')
        [ "$out" = "$v" ] || bad "the Python package says '$out'"
fi
exit $fail
