#!/bin/sh
# deps.sh: install the Debian packages braid needs for the given purposes (build, test, bench),
# with apt-get when root; otherwise print the one apt-get line to run and fail.
set -eu

pkgs=""
for what in "$@"; do
    case "$what" in
        build) pkgs="$pkgs gcc make pkg-config libev-dev libc-ares-dev libconfig-dev libsodium-dev libsystemd-dev libmicrohttpd-dev libcap-ng-dev liblwip-dev python3" ;;
        test)  pkgs="$pkgs libcmocka-dev dante-server iperf3 iproute2 iputils-ping clang libclang-rt-14-dev procps debhelper" ;;
        bench) pkgs="$pkgs iperf3 iproute2 gnuplot-nox iputils-ping procps" ;;
        *) echo "deps.sh: unknown purpose '$what' (build, test, bench)" >&2; exit 2 ;;
    esac
done

missing=""
for p in $pkgs; do
    case " $missing " in *" $p "*) continue ;; esac
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "braid needs these Debian packages:$missing" >&2
    echo "install them with:  sudo apt-get install -y$missing" >&2
    exit 1
fi
