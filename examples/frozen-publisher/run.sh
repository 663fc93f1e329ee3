#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# run.sh PUBLISHER READER: publish and freeze the table, read it as another
# uid (65534, nobody, when run as root; else as this uid), check that a
# reader expecting another owner refuses it, remove it.
set -eu
"$1" publish
owner=$(id -u)
as_reader() {
        if [ "$owner" -eq 0 ]; then
                setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
        else
                "$@"
        fi
}
[ "$owner" -eq 0 ] || echo "run.sh: not root: the reader runs as uid $owner too"
as_reader "$2" "$owner"
# A table that uid 4242 was expected to publish: this one is not it.
err=$(mktemp)
trap 'rm -f "$err"' EXIT
if as_reader "$2" 4242 2>"$err"; then
        echo "run.sh: the reader accepted a table of the wrong owner" >&2
        exit 1
fi
grep -qi "operation not permitted" "$err" || { cat "$err" >&2; exit 1; }
echo "run.sh: a reader expecting uid 4242 refuses it: $(cat "$err")"
"$1" remove
