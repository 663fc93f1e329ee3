#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# deb.sh SRC_DIR WORK_DIR: build the Debian packages (cpack -G DEB) from a
# tree configured for /usr in WORK_DIR, check their contents and dependencies
# (dpkg -I, dpkg -c), install them with dpkg -i, run a client built with
# pkg-config and one built with find_package against the packaged ipcbrokerd
# on a private socket, then purge them, leaving the machine as it was.
# Exit 77 (skipped, with the reason) when not root, without dpkg tools, or
# when one of the packages is already installed (it would be replaced).
set -eu
src=$(realpath "$1")
work=$(realpath -m "$2")
skip() { echo "deb: $*: skipped"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "installing packages needs root (this is uid $(id -u))"
for t in dpkg dpkg-deb dpkg-shlibdeps cpack cc pkg-config flock; do
        command -v "$t" >/dev/null 2>&1 || skip "no $t (apt-get install dpkg-dev)"
done
pkgs="ipcbroker libipcbroker0 libipcbroker-dev"
# One run at a time on this machine: the packages install into /usr.
exec 9>/tmp/ipcbroker-deb-test.lock
flock 9
for p in $pkgs; do
        if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
                skip "$p is installed already; this test would replace it"
        fi
done

fail() { echo "deb: $*" >&2; exit 1; }
# dpkg, waiting (up to 3 minutes) while apt or dpkg of someone else holds
# its lock.  Output in $tmp/dpkg.log.
dpkg_wait() {
        n=0
        until dpkg "$@" >"$tmp/dpkg.log" 2>&1; do
                grep -q 'lock' "$tmp/dpkg.log" && [ $n -lt 90 ] || return 1
                n=$((n + 1))
                sleep 2
        done
}
tmp=$(mktemp -d)
daemon=
installed=
cleanup() {
        if [ -n "$daemon" ]; then kill -KILL "$daemon" 2>/dev/null || true; fi
        if [ -n "$installed" ]; then
                dpkg_wait --purge $pkgs || { cat "$tmp/dpkg.log"; echo "deb: dpkg --purge $pkgs failed" >&2; }
        fi
        rm -rf "$tmp"
}
trap cleanup EXIT

# Build: only what the packages hold.
rm -rf "$work/pkg"
cmake -S "$src" -B "$work" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DIPCB_TESTS=OFF -DIPCB_BENCH=OFF >"$work.log" 2>&1 || { cat "$work.log"; fail "configure"; }
cmake --build "$work" -j2 >>"$work.log" 2>&1 || { tail -n 40 "$work.log"; fail "build"; }
(cd "$work" && cpack -G DEB -B "$work/pkg") >>"$work.log" 2>&1 || { tail -n 40 "$work.log"; fail "cpack"; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$work/CMakeCache.txt")
arch=$(dpkg --print-architecture)
deb() { echo "$work/pkg/$1_${version}_$arch.deb"; }
for p in $pkgs; do [ -f "$(deb "$p")" ] || fail "no $(deb "$p")"; done

# Dependencies (dpkg-shlibdeps) and contents.
depends() { dpkg-deb -f "$(deb "$1")" Depends; }
has_dep() { depends "$1" | tr ',' '\n' | grep -q "^ *$2\( \|$\)" || fail "$1 does not depend on $2: $(depends "$1")"; }
lacks_dep() { ! depends "$1" | tr ',' '\n' | grep -q "^ *$2\( \|$\)" || fail "$1 depends on $2: $(depends "$1")"; }
has_dep ipcbroker libuv1
# The symbols used date from libuv 1.4; the loop needs 1.44 (daemon/mainloop.c).
depends ipcbroker | grep -q "libuv1 (>= 1.44)" ||
        fail "ipcbroker does not require libuv1 (>= 1.44): $(depends ipcbroker)"
has_dep ipcbroker libsystemd0
has_dep ipcbroker libc6
has_dep libipcbroker0 libc6
lacks_dep libipcbroker0 libuv1
lacks_dep libipcbroker0 libsystemd0
depends libipcbroker-dev | grep -q "libipcbroker0 (= $version)" ||
        fail "libipcbroker-dev does not depend on libipcbroker0 (= $version): $(depends libipcbroker-dev)"
dpkg-deb -e "$(deb libipcbroker0)" "$tmp/ctrl"
grep -q "^libipcbroker 0 libipcbroker0" "$tmp/ctrl/shlibs" || fail "libipcbroker0 has no shlibs file"

contents() { dpkg-deb -c "$(deb "$1")" | awk '{ print $6 }' | sed 's|^\./|/|'; }
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
lib=/usr/lib/$multiarch
expect() { # expect PACKAGE PATH...
        p=$1
        shift
        contents "$p" >"$tmp/list"
        for f in "$@"; do grep -qx "$f" "$tmp/list" || fail "$p does not contain $f"; done
}
refuse() { # refuse PACKAGE REGEX: no path of PACKAGE matches
        if contents "$1" | grep -E "$2"; then fail "$1 contains the paths above"; fi
}
expect ipcbroker /usr/bin/ipcbrokerd /usr/bin/ipcbrokerctl \
        /usr/lib/systemd/system/ipcbroker.socket /usr/lib/systemd/system/ipcbroker.service \
        /usr/lib/systemd/user/ipcbroker.socket /usr/lib/systemd/user/ipcbroker.service \
        /usr/bin/ipcbroker-run "$lib/libipcbroker-preload.so"
expect libipcbroker0 "$lib/libipcbroker.so.0" "$lib/libipcbroker.so.$version"
expect libipcbroker-dev /usr/include/ipcbroker.h "$lib/libipcbroker.so" "$lib/libipcbroker.a" \
        "$lib/pkgconfig/ipcbroker.pc" "$lib/cmake/ipcbroker/ipcbrokerConfig.cmake"
# The preload shim is a plugin of ipcbroker-run, not a library to link.
refuse ipcbroker '/libipcbroker\.so(\.|$)|\.a$|include/|man3/'
refuse libipcbroker0 'bin/|include/|\.a$|\.so$|/man/'
refuse libipcbroker-dev 'bin/|systemd/|\.so\.'
if [ -f "$work/docs/man/ipcbroker.7" ]; then # built only with scdoc
        expect ipcbroker /usr/share/man/man8/ipcbrokerd.8 /usr/share/man/man7/ipcbroker.7
        expect libipcbroker-dev /usr/share/man/man3/libipcbroker.3 /usr/share/man/man3/ipcb_shm_create.3
fi
grep -q '^ExecStart=/usr/bin/ipcbrokerd' "$work/systemd/system/ipcbroker.service" ||
        fail "the packaged unit does not start /usr/bin/ipcbrokerd"

# Install, use, purge.
installed=1
dpkg_wait -i "$(deb libipcbroker0)" "$(deb libipcbroker-dev)" "$(deb ipcbroker)" ||
        { cat "$tmp/dpkg.log"; fail "dpkg -i"; }
mkdir -m 755 "$tmp/run"
/usr/bin/ipcbrokerd --socket "$tmp/run/ipcb.sock" </dev/null 2>"$tmp/daemon.log" &
daemon=$!
i=0
until /usr/bin/ipcbrokerctl --socket "$tmp/run/ipcb.sock" list >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -le 200 ] && kill -0 "$daemon" 2>/dev/null || { cat "$tmp/daemon.log"; fail "the packaged ipcbrokerd did not start"; }
        sleep 0.05
done
# pkg-config from the system's search path, the shared library from ld.so.cache.
cc -o "$tmp/pc" "$src/tests/install/consumer.c" $(pkg-config --cflags --libs ipcbroker)
ldd "$tmp/pc" | grep -q "libipcbroker.so.0 => \(/usr\)\{0,1\}/lib/$multiarch/libipcbroker.so.0" || fail "pc does not use $lib: $(ldd "$tmp/pc")"
"$tmp/pc" "$tmp/run/ipcb.sock" || fail "a pkg-config client against the packaged daemon"
cmake -S "$src/tests/install" -B "$tmp/consumer" >/dev/null && cmake --build "$tmp/consumer" >/dev/null ||
        fail "find_package(ipcbroker) against the packages"
"$tmp/consumer/consumer_shared" "$tmp/run/ipcb.sock" || fail "a find_package client (shared)"
"$tmp/consumer/consumer_static" "$tmp/run/ipcb.sock" || fail "a find_package client (static)"
/usr/bin/ipcbrokerctl --socket "$tmp/run/ipcb.sock" create deb-check 4K
/usr/bin/ipcbrokerctl --socket "$tmp/run/ipcb.sock" list | grep -q deb-check || fail "ipcbrokerctl list"
if [ -f "$work/docs/man/ipcbroker.7" ] && command -v man >/dev/null; then
        man 3 ipcb_shm_create 2>/dev/null | grep -q ipcb_shm_create || fail "man 3 ipcb_shm_create"
        man 8 ipcbrokerd 2>/dev/null | grep -q -- --restore-grace || fail "man 8 ipcbrokerd"
fi
kill -TERM "$daemon"
wait "$daemon" || { cat "$tmp/daemon.log"; fail "the packaged ipcbrokerd did not exit cleanly"; }
daemon=
dpkg_wait --purge $pkgs || { cat "$tmp/dpkg.log"; fail "dpkg --purge"; }
installed=
for p in $pkgs; do
        ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || fail "$p is still installed"
done
for f in /usr/bin/ipcbrokerd /usr/include/ipcbroker.h "$lib/libipcbroker.so.0" \
        /usr/lib/systemd/system/ipcbroker.socket; do
        [ ! -e "$f" ] || fail "$f is left after the purge"
done
echo "deb: $pkgs $version built, checked (dpkg -I, dpkg -c), installed, used by pkg-config and find_package clients, purged"
