#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# run.sh CONSUMER PRODUCER COUNT: the consumer first (it waits for the
# objects), then the producer; both must succeed.
set -eu
"$1" "$3" &
consumer=$!
status=0
"$2" "$3" || status=$?
wait "$consumer" || status=$?
exit "$status"
