#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# with-broker.sh IPCBROKERD CONSUMER PRODUCER: run an example's consumer
# and the producer against a private ipcbrokerd (IPCBROKER_SOCKET), the
# consumer first, so that it has to wait for the producer.  Exits with the
# consumer's status (or 1 if the producer failed).
set -u
brokerd=$1 consumer=$2 producer=$3
dir=$(mktemp -d /tmp/ipcb-example.XXXXXX) || exit 1
chmod 0755 "$dir"
"$brokerd" --socket "$dir/sock" 2>"$dir/log" &
bpid=$!
cleanup() {
        kill "$bpid" 2>/dev/null
        wait "$bpid" 2>/dev/null
        rm -rf "$dir"
}
trap cleanup EXIT
i=0
while [ ! -S "$dir/sock" ] && [ $i -lt 100 ]; do
        sleep 0.05
        i=$((i + 1))
done
[ -S "$dir/sock" ] || { echo "no broker"; cat "$dir/log"; exit 1; }
export IPCBROKER_SOCKET="$dir/sock"
"$consumer" &
cpid=$!
sleep 0.2
"$producer" || { kill "$cpid"; exit 1; }
wait "$cpid"
