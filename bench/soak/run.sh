#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/soak/run.sh: the chaos soak (docs/performance.md, "Soak").
#   bench/soak/run.sh [--build DIR] [--broker-log FILE] [--broker-nice N] [--minutes M] [ipcb_soak options]
# Runs the broker built in DIR (default build/) under a real `systemd --user`
# manager, in a private mount namespace and a cgroup of its own, with the
# project's user units (socket opened to every uid for the soak), then
# ipcb_soak against it.  Fails when an invariant broke, or when an instance
# of the broker did not exit cleanly (each exit is recorded by ExecStopPost).
# Needs root (clients of several uids) and the systemd package.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=build
broker_log="" # where to keep the broker's log (by default it goes with the run)
broker_nice=0 # the broker's nice value (Nice= of the unit)
args=()
while [ $# -gt 0 ]; do
        case $1 in
        --build) build=$2; shift 2 ;;
        --build=*) build=${1#--build=}; shift ;;
        --broker-log) broker_log=$2; [ "${2#/}" != "$2" ] || broker_log=$OLDPWD/$2; shift 2 ;;
        --broker-nice) broker_nice=$2; shift 2 ;;
        -h | --help)
                sed -n '3,10p' "$0" | sed 's/^# \{0,1\}//'
                exec "$build/bench/ipcb_soak" --help ;;
        *) args+=("$1"); shift ;;
        esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench/soak/run.sh: needs root (clients of several uids)" >&2; exit 2; }
[ -d "$build" ] || { echo "bench/soak/run.sh: no build directory '$build' (./dev.sh test makes build/)" >&2; exit 2; }
build=$(cd "$build" && pwd)
[ -x /lib/systemd/systemd ] || { echo "bench/soak/run.sh: no /lib/systemd/systemd (package systemd)" >&2; exit 2; }
[ -x "$build/bench/ipcb_soak" ] || { echo "bench/soak/run.sh: build $build/bench/ipcb_soak first" >&2; exit 2; }

if [ -z "${IPCB_SOAK_INSIDE:-}" ]; then
        export IPCB_SOAK_INSIDE=1
        exec unshare -m --propagation private "$0" --build "$build" ${broker_log:+--broker-log "$broker_log"} \
                --broker-nice "$broker_nice" "${args[@]}"
fi

# The manager's cgroups: its own, in every hierarchy it uses (the named
# systemd one and the unified one), so that another user manager of root
# running meanwhile (tests/test_systemd.c) neither sees nor stops our units.
cgs=()
for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
        [ -f "$h/cgroup.procs" ] || continue
        grep -q " $h cgroup" /proc/mounts || continue
        mkdir -p "$h/ipcb-soak-$$" && echo $$ >"$h/ipcb-soak-$$/cgroup.procs" && cgs+=("$h")
done

mkdir -p /run/systemd
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir /run/systemd/system
rt=$(mktemp -d /tmp/ipcb-soak-rt.XXXXXX)
cfg=$(mktemp -d /tmp/ipcb-soak-cfg.XXXXXX)
chmod 0755 "$rt" # clients of other uids reach the socket below it
mgr=""
cleanup() {
        [ -n "$mgr" ] && kill "$mgr" 2>/dev/null && wait "$mgr" 2>/dev/null || true
        rm -rf "$rt" "$cfg"
        for h in "${cgs[@]}"; do
                # Whatever is left in our cgroups goes, then the cgroups.
                echo $$ >"$h/cgroup.procs"
                find "$h/ipcb-soak-$$" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
                for _ in 1 2 3 4 5; do
                        find "$h/ipcb-soak-$$" -depth -type d -exec rmdir {} + 2>/dev/null && break
                        sleep 0.2
                done
        done
}
trap cleanup EXIT
export XDG_RUNTIME_DIR=$rt XDG_CONFIG_HOME=$cfg
units=$cfg/systemd/user
mkdir -p "$units/ipcbroker.service.d" "$units/ipcbroker.socket.d"
cp "$build/systemd/user/ipcbroker.socket" "$build/systemd/user/ipcbroker.service" "$units/"
grace=5
for a in "${args[@]}"; do case $a in --grace=*) grace=${a#--grace=} ;; esac; done
for i in "${!args[@]}"; do [ "${args[$i]}" = --grace ] && grace=${args[$((i + 1))]}; done
cat >"$units/ipcbroker.socket.d/soak.conf" <<EOF
[Socket]
SocketMode=0666
DirectoryMode=0755
EOF
# Quotas small enough that the quota uid reaches them.  LeakSanitizer cannot
# run in the unit's sandbox: leaks are the test suites' business.
cat >"$units/ipcbroker.service.d/soak.conf" <<EOF
[Service]
Environment=ASAN_OPTIONS=detect_leaks=0
Nice=$broker_nice
ExecStart=
ExecStart=$build/daemon/ipcbrokerd --restore-grace $grace --max-objects 256 --max-bytes 64M --slow-turn-ms 5
StandardOutput=append:$rt/broker.log
StandardError=append:$rt/broker.log
ExecStopPost=/bin/sh -c 'echo "\$\$SERVICE_RESULT \$\$EXIT_CODE \$\$EXIT_STATUS" >> $rt/exits'
EOF

/lib/systemd/systemd --user --log-target=console --log-level="${IPCB_SOAK_MANAGER_LOG:-warning}" >"$rt/manager.log" 2>&1 &
mgr=$!
for _ in $(seq 500); do [ -S "$rt/systemd/private" ] && break; sleep 0.02; done
[ -S "$rt/systemd/private" ] || { echo "bench/soak/run.sh: the user manager did not start" >&2; cat "$rt/manager.log" >&2; exit 1; }
systemctl --user daemon-reload
systemctl --user start ipcbroker.socket
export IPCBROKER_SOCKET=$rt/ipcbroker/ipcbroker.sock

# However it goes, the run ends: its length and 10 minutes more.
minutes=1
for a in "${args[@]}"; do case $a in --minutes=*) minutes=${a#--minutes=} ;; esac; done
for i in "${!args[@]}"; do [ "${args[$i]}" = --minutes ] && minutes=${args[$((i + 1))]}; done
limit=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 + 600 }')
status=0
timeout -k 30 "$limit" "$build/bench/ipcb_soak" --grace "$grace" "${args[@]}" || status=$?
[ $status -eq 124 ] && echo "bench/soak/run.sh: ipcb_soak did not end within $limit s" >&2
systemctl --user stop ipcbroker.service ipcbroker.socket || status=1
echo
echo "The broker's exits under the manager (result, code, status):"
sort "$rt/exits" | uniq -c
# Each instance logs its loop turns at exit (daemon/turns.c): the broker's
# own work, told apart from time it waited for a CPU.
awk '/loop turns: .* ms or longer/ {
        n++; slow += $5
        took = $14 + 0; cpu = substr($16, 2) + 0; most = $(NF - 1) + 0
        if (took > wt) { wt = took; wc = cpu }
        if (most > mc) mc = most
}
/loop turns: the most connections one turn accepted/ {
        if ($NF + 0 > cl) cl = $NF + 0
}
END {
        if (n) printf "\nThe broker'"'"'s loop turns (%d instances): %d took 5 ms or longer; the longest took %.3f ms, %.3f ms of it on a CPU; the most CPU a slow turn used: %.3f ms; the most connections one turn closed: %d\n", n, slow, wt, wc, mc, cl
}' "$rt/broker.log"
[ -z "$broker_log" ] || cp "$rt/broker.log" "$broker_log"
if grep -qv '^success exited 0$' "$rt/exits"; then
        echo "bench/soak/run.sh: an instance of the broker did not exit cleanly" >&2
        status=1
fi
if [ $status -ne 0 ]; then
        echo "The broker's log (last 40 lines):"
        tail -n 40 "$rt/broker.log"
        echo "The manager's log (last 20 lines):"
        grep -v "^$" "$rt/manager.log" | tail -n 20
fi
exit $status
