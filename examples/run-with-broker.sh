#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# run-with-broker.sh COMMAND [ARG...]: start ipcbrokerd on a private socket in
# a fresh directory, run COMMAND with $IPCBROKER_SOCKET naming that socket,
# then stop the broker with SIGTERM.  $IPCBROKERD and $IPCBROKERCTL name the
# binaries (default: from $PATH).  Exits with COMMAND's status, or 1 if the
# broker does not start or does not exit cleanly (its log is shown then).
set -eu
daemon=${IPCBROKERD:-ipcbrokerd}
ctl=${IPCBROKERCTL:-ipcbrokerctl}
dir=$(mktemp -d /tmp/ipcb-example.XXXXXX)
chmod 755 "$dir" # a reader of another uid must reach the socket
sock=$dir/ipcb.sock
pid=
cleanup() {
        if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
        rm -rf "$dir"
}
trap cleanup EXIT

"$daemon" --socket "$sock" </dev/null 2>"$dir/log" &
pid=$!
# Ready when it answers a request (the socket file appears before listen()).
i=0
until "$ctl" --socket "$sock" list >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 200 ] || ! kill -0 "$pid" 2>/dev/null; then
                echo "run-with-broker: $daemon did not start on $sock" >&2
                cat "$dir/log" >&2
                exit 1
        fi
        sleep 0.05
done

export IPCBROKER_SOCKET="$sock"
status=0
"$@" || status=$?

kill -TERM "$pid"
dstatus=0
wait "$pid" || dstatus=$?
pid=
if [ "$dstatus" -ne 0 ]; then
        echo "run-with-broker: ipcbrokerd exited with status $dstatus" >&2
        [ "$status" -ne 0 ] || status=1
fi
if [ "$status" -ne 0 ]; then
        echo "run-with-broker: the broker's log:" >&2
        cat "$dir/log" >&2
fi
exit "$status"
