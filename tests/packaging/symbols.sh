#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# symbols.sh HEADER LIBDIR: what the libraries define.  libipcbroker.so
# exports exactly the functions ipcbroker.h declares with IPCB_EXPORT.
# In libipcbroker.a every other global symbol is named ipcb__*, so a
# program may define any name outside the ipcb_ prefix: one that defines
# each internal name without its prefix (proto_decode, client_call, ...)
# links against the archive and runs.
set -eu
header=$(realpath "$1") lib=$(realpath "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "symbols: $*" >&2; fail=1; }

sed -n 's/^IPCB_EXPORT [^(]*[ *]\(ipcb_[a-z0-9_]*\)(.*/\1/p' "$header" | sort -u >"$tmp/api"
nm -D --defined-only "$lib/libipcbroker.so" | awk '$3 != "IPCB_0.1" {print $3}' | sed 's/@.*//' |
        sort -u >"$tmp/so"
if ! cmp -s "$tmp/api" "$tmp/so"; then
        bad "libipcbroker.so exports differ from the header (<: header only, >: .so only):"
        diff "$tmp/api" "$tmp/so" >&2 || true
fi

nm -g --defined-only "$lib/libipcbroker.a" | awk '$2 ~ /^[A-Z]$/ {print $3}' | sort -u >"$tmp/a"
grep -v '^ipcb_' "$tmp/a" | sed 's/^/  outside the prefix: /' >"$tmp/outside" || true
[ ! -s "$tmp/outside" ] || { bad "libipcbroker.a defines:"; cat "$tmp/outside" >&2; }
grep '^ipcb_' "$tmp/a" | grep -v '^ipcb__' | sort -u >"$tmp/a_api"
comm -23 "$tmp/a_api" "$tmp/api" | sed 's/^/  not in the header: /' >"$tmp/stray"
[ ! -s "$tmp/stray" ] || { bad "libipcbroker.a defines ipcb_ symbols the header does not declare:"; cat "$tmp/stray" >&2; }
n=$(grep -c '^ipcb__' "$tmp/a" || true)
[ "$n" -gt 0 ] || bad "no ipcb__ symbol in libipcbroker.a: is the internal prefix gone?"

# A program that takes every internal name for itself.
{
        echo '#include <ipcbroker.h>'
        echo '#include <stdio.h>'
        grep '^ipcb__' "$tmp/a" | sed 's/^ipcb__\(.*\)/int \1(void); int \1(void) { return 1; }/'
        echo 'int main(void) { puts(ipcb_version()); return ipcb_strerror(-ENOTCONN) ? 0 : 1; }'
} >"$tmp/clash.c"
sed -i '1i #include <errno.h>' "$tmp/clash.c"
if ! cc -I"$(dirname "$header")" "$tmp/clash.c" -o "$tmp/clash" "$lib/libipcbroker.a" -lpthread \
        2>"$tmp/ld.err"; then
        bad "a program defining the internal names without their prefix does not link:"
        head -5 "$tmp/ld.err" >&2
elif ! "$tmp/clash" >/dev/null; then
        bad "that program does not run"
fi
echo "symbols: $(wc -l <"$tmp/api") exported, $n internal (ipcb__)"
exit $fail
