#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# spdx.sh SRC_DIR: every source file git knows of (tracked, or new and not
# ignored) -- C, C++, CMake, shell, Python, systemd units, templates, man
# page sources -- names its license (SPDX-License-Identifier:
# LGPL-2.1-or-later) within its first five lines.  Exit 77 (skipped) outside
# a git checkout.
set -eu
cd "$1"
if ! git rev-parse --git-dir >/dev/null 2>&1; then
        echo "spdx: not a git checkout: skipped"
        exit 77
fi
want='SPDX-License-Identifier: LGPL-2.1-or-later'
files=$(git ls-files --cached --others --exclude-standard -- \
        '*.c' '*.h' '*.cpp' '*CMakeLists.txt' '*.cmake' '*.in' '*.sh' '*.py' \
        '*.service' '*.socket' '*.scd' .ci/run dev.sh | sort -u)
n=0 bad=0
for f in $files; do
        [ -f "$f" ] || continue # deleted in the work tree
        n=$((n + 1))
        if ! head -n 5 "$f" | grep -qF "$want"; then
                echo "spdx: $f: no '$want' in its first 5 lines" >&2
                bad=$((bad + 1))
        fi
done
if [ "$n" -lt 50 ]; then # the list itself must not silently come back empty
        echo "spdx: only $n files found: is $1 the source tree?" >&2
        exit 1
fi
echo "spdx: $n files checked, $bad without the SPDX line"
[ "$bad" -eq 0 ]
