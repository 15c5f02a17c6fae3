# Shared by scripts/setup and scripts/test: run as root, or as a user with sudo.
# Installs the Debian packages the project needs, builds, and installs the extension into PostgreSQL 15.
set -euo pipefail

PROJECT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
PG_BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin
export PG_CONFIG=$PG_BINDIR/pg_config

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
else
    SUDO=(sudo)
fi

log() { printf '\n==> %s\n' "$*"; }

# as_postgres CMD...: run a command as the postgres OS user (initdb and pg_regress refuse root).
as_postgres() {
    if [ "$(id -un)" = postgres ]; then
        "$@"
    elif [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        sudo -u postgres -- "$@"
    fi
}

install_packages() {
    local packages=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR libssl-dev rapidjson-dev zlib1g-dev
        build-essential libgtest-dev libipc-run-perl openssl clang-format curl "$@")
    local missing=()
    for package in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

build_and_install() {
    log "building segment_webhook"
    make -C "$PROJECT_DIR" -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG"
    log "installing into $("$PG_CONFIG" --pkglibdir)"
    "${SUDO[@]}" make -C "$PROJECT_DIR" -s install PG_CONFIG="$PG_CONFIG"
}
