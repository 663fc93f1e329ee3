#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# man.sh BUILD_DIR HEADER: install the man pages of BUILD_DIR into a
# temporary prefix, render every page (and every .so redirect) with man -l
# at 80 columns and fail on any warning or empty output; check that every
# function HEADER exports has a page (`man FUNCTION` finds it), and that the
# pages of the daemon, the concepts and the library are there.  Exit 77
# (skipped) without man or without built pages (no scdoc at configure).
set -eu
build=$(realpath "$1") header=$(realpath "$2")
if ! command -v man >/dev/null 2>&1; then
        echo "man: no man (apt-get install man-db): skipped"
        exit 77
fi
if [ ! -f "$build/docs/man/ipcbroker.7" ]; then
        echo "man: the pages were not built (apt-get install scdoc, then reconfigure): skipped"
        exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for c in daemon dev; do
        cmake --install "$build" --prefix "$tmp" --component "$c" >/dev/null
done
mandir=$tmp/share/man
fail=0 n=0
for want in man8/ipcbrokerd.8 man7/ipcbroker.7 man3/libipcbroker.3; do
        [ -f "$mandir/$want" ] || { echo "man: $want is not installed" >&2; fail=1; }
done
cd "$mandir" # .so redirects are relative to the top of the hierarchy
for page in man*/*; do
        n=$((n + 1))
        MANWIDTH=80 man -l --warnings=w "$page" >"$tmp/out" 2>"$tmp/err" || true
        if [ -s "$tmp/err" ]; then
                echo "man: $page: $(cat "$tmp/err")" >&2
                fail=1
        fi
        lines=$(wc -l <"$tmp/out")
        if [ "$lines" -lt 10 ]; then
                echo "man: $page renders to $lines lines" >&2
                fail=1
        fi
done
funcs=$(sed -n 's/^IPCB_EXPORT [^(]*[ *]\(ipcb_[a-z_]*\)(.*/\1/p' "$header")
nf=0
for f in $funcs; do
        nf=$((nf + 1))
        # `man 3 f` finds f's page, or the .so redirect to its group's
        if ! MANPATH=$mandir MANWIDTH=80 man 3 "$f" 2>/dev/null | grep -q "$f"; then
                echo "man: man 3 $f does not show a page about $f" >&2
                fail=1
        fi
done
if [ "$nf" -lt 40 ]; then
        echo "man: only $nf functions found in $header" >&2
        fail=1
fi
echo "man: $n pages rendered, $nf functions of the header looked up"
exit $fail
