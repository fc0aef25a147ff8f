#!/usr/bin/env bash
# One-step set-up for Separation Explorer on Debian with Python 3.11.
#   ./setup.sh demo   install what is needed, then open the app on the embedded demo
#   ./setup.sh test   install what is needed, then run the test suite
# Idempotent: a second run only checks a stamp and starts at once.
set -euo pipefail
cd "$(dirname "$0")"
action="${1:-demo}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3

system_packages=(libportaudio2 libasound2 libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0
    libfontconfig1 libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
    libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libglib2.0-0 xvfb)

install_system_packages() {
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 0
    local missing=()
    for package in "${system_packages[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "setup: installing system libraries: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
}

quiet_pip() {
    # pip's status is kept; the machine's notes about absent local package folders are dropped.
    local log status=0
    log="$(mktemp)"
    .venv/bin/python -m pip install -q "$@" >"$log" 2>&1 || status=$?
    grep -v "is ignored: it is neither a file nor a directory" "$log" >&2 || true
    rm -f "$log"
    return "$status"
}

install_python_packages() {
    local stamp=.venv/.setup-stamp
    local want
    want="$(sha256sum pyproject.toml setup.sh | sha256sum | cut -c1-16)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
    [ -x .venv/bin/python ] || "$python" -m venv .venv
    echo "setup: installing Python packages into .venv" >&2
    quiet_pip --upgrade pip
    # torch first, by exact pin, so no other requirement can pull a different build.
    quiet_pip "torch==2.13.0"
    quiet_pip -e ".[dev]"
    echo "$want" > "$stamp"
}

install_system_packages
install_python_packages

case "$action" in
    demo)
        shift || true
        exec .venv/bin/explorer "$@" ;;
    test)
        shift || true
        export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
        status=0
        .venv/bin/python -m pytest "$@" || status=$?
        # pytest's 5 means "no tests collected": not a failure of the code.
        [ "$status" = 5 ] && status=0
        exit "$status" ;;
    *)
        echo "usage: ./setup.sh demo|test [args...]" >&2; exit 2 ;;
esac
