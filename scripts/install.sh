#!/usr/bin/env bash
# `make install` / `make uninstall`: BCX as boot-time services. Idempotent, honours DESTDIR.
#
#   install    virtualenv /opt/bcx with the package (from a wheel built by the dev .venv),
#              /etc/bcx/bcx.conf (640 root:bcx, never overwritten), /etc/default/bcx,
#              /etc/logrotate.d/bcx, systemd units, LSB scripts in /etc/init.d,
#              /var/lib/bcx and /var/log/bcx (bcx:bcx). Without DESTDIR it also creates the
#              bcx system user and enables the units (systemd running) or the init scripts.
#              Units: an install into / is the administrator's own, so /etc/systemd/system;
#              a staged one (DESTDIR) is a package's, so /lib/systemd/system (Debian policy),
#              with the user and the ownership it cannot set recorded in
#              /usr/lib/sysusers.d/bcx.conf and /usr/lib/tmpfiles.d/bcx.conf.
#   uninstall  stops and disables the services, removes the program, units and scripts;
#              keeps the config, data, logs and user (PURGE=1 removes those too).
#
# Environment: DESTDIR, BCX_PYTHON (interpreter of the virtualenv, default /usr/bin/python3),
# BCX_BUILD_PYTHON (builds the wheel, default .venv/bin/python), BCX_PIP_OPTS (extra pip
# arguments, e.g. "--no-deps --no-index" for an offline staging install).
set -euo pipefail

cd "$(dirname "$0")/.."
SRC=$PWD
DESTDIR=${DESTDIR:-}
D=${DESTDIR%/}
PREFIX=/opt/bcx
UNITS=(bcx-tracker.service bcx-tracker@.service bcx-watcher.service bcx-server.service bcx-web.service)
SCRIPTS=(bcx-tracker bcx-watcher bcx-server bcx-web)
if [ -n "$D" ]; then UNITDIR=/lib/systemd/system; else UNITDIR=/etc/systemd/system; fi
STAMP=$PREFIX/.bcx-source

say() { echo "bcx-install: $*"; }
systemd_running() { [ -z "$D" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }
have_bcx_user() { getent passwd bcx >/dev/null && getent group bcx >/dev/null; }

# chown only where it can mean something: as root, with the bcx user known. A staging
# install (DESTDIR, unprivileged or on a build host without the user) keeps the modes only.
own() {
    local owner=$1; shift
    if [ "$(id -u)" -eq 0 ] && { [ "$owner" = root:root ] || have_bcx_user; }; then
        chown "$owner" "$@"
    fi
}

# install(1) rewrites a file every time; copy only when the content or mode differs so a
# second run changes nothing (not even mtimes).
put() {
    local mode=$1 src=$2 dst=$3
    if ! cmp -s "$src" "$dst" || [ "$(stat -c %a "$dst")" != "${mode#0}" ]; then
        install -D -m "$mode" "$src" "$dst"
    fi
}

source_digest() {
    # What the wheel is built from; equal digests mean the installed package is current.
    find bcx web static pyproject.toml requirements.txt -type f \
        ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 2>/dev/null \
        | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64
}

check_root() {
    if [ -z "$D" ] && [ "$(id -u)" -ne 0 ]; then
        echo "bcx-install: installing into / needs root (or set DESTDIR)" >&2
        exit 1
    fi
}

create_user() {
    [ -n "$D" ] && return 0
    if ! getent passwd bcx >/dev/null; then
        say "creating system user bcx"
        useradd --system --user-group --home-dir /var/lib/bcx --no-create-home \
            --shell /usr/sbin/nologin --comment "BCX market monitor" bcx
    fi
}

install_program() {
    local python=${BCX_PYTHON:-/usr/bin/python3} build=${BCX_BUILD_PYTHON:-$SRC/.venv/bin/python}
    local digest
    digest=$(source_digest)
    if [ -x "$D$PREFIX/bin/python" ] && [ "$(cat "$D$STAMP" 2>/dev/null)" = "$digest" ]; then
        say "$PREFIX is up to date"
        return 0
    fi
    [ -x "$python" ] || python=$(command -v python3)
    [ -x "$D$PREFIX/bin/python" ] || "$python" -m venv "$D$PREFIX"
    WHEELS=$(mktemp -d)
    trap 'rm -rf "$WHEELS"' EXIT
    # The dev .venv builds the wheel offline (--no-build-isolation); the service virtualenv
    # then needs no compiler, no build tools and no source tree.
    "$build" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
        --wheel-dir "$WHEELS" "$SRC" >/dev/null
    local pip=("$D$PREFIX/bin/python" -m pip install --quiet --disable-pip-version-check)
    # Dependencies at the versions requirements.txt pins, then the package itself again even
    # when its version number did not change (the digest did).
    # shellcheck disable=SC2086 # BCX_PIP_OPTS is a word list by design
    "${pip[@]}" --constraint "$SRC/requirements.txt" ${BCX_PIP_OPTS:-} "$WHEELS"/bcx-*.whl
    "${pip[@]}" --force-reinstall --no-deps --no-index "$WHEELS"/bcx-*.whl
    if [ -n "$D" ]; then
        # A staged virtualenv must run from its final place: point its scripts there.
        grep -rlI --null "^#!$D$PREFIX/bin/" "$D$PREFIX/bin" \
            | xargs -0 -r sed -i "1s|^#!$D$PREFIX/bin/|#!$PREFIX/bin/|"
        sed -i "s|$D$PREFIX|$PREFIX|g" "$D$PREFIX"/bin/activate* "$D$PREFIX/pyvenv.cfg"
    fi
    echo "$digest" > "$D$STAMP"
    say "installed the bcx package into $D$PREFIX"
}

vendored_files() {
    # The files of npm package $1 the templates load: url_for('pages.vendor', package='$1',
    # filename='...').
    grep -ohE "package='$1', filename='[^']+'" "$SRC"/web/templates/*.html \
        | sed -E "s/.*filename='([^']+)'/\1/" | sort -u
}

install_assets() {
    # The web pages' own static files and the Highcharts build npm installed: web/pages.py
    # finds them under <prefix>/share/bcx when it runs from the installed virtualenv.
    local file
    (cd "$SRC" && find static -type f ! -name '.gitkeep' -print0) | while IFS= read -r -d '' file; do
        put 644 "$SRC/$file" "$D$PREFIX/share/bcx/$file"
    done
    if [ -d "$SRC/node_modules/highcharts" ]; then
        # Only the files the pages load (and the licence), not the whole npm package.
        local vendor=$D$PREFIX/share/bcx/node_modules/highcharts keep
        keep=" LICENSE.txt $(vendored_files highcharts | tr '\n' ' ')"
        for file in $keep; do
            put 644 "$SRC/node_modules/highcharts/$file" "$vendor/$file"
        done
        # An earlier version copied more of the package: drop what the pages do not load.
        (cd "$vendor" && find . -type f -printf '%P\n') | while IFS= read -r file; do
            case "$keep" in *" $file "*) ;; *) rm -f "$vendor/$file" ;; esac
        done
        find "$vendor" -mindepth 1 -type d -empty -delete
    else
        say "warning: node_modules/highcharts is missing (run make setup): charts will not load"
    fi
}

install_files() {
    install -d -m 755 "$D/etc/bcx" "$D$PREFIX/share/bcx" "$D$PREFIX/share/doc/bcx"
    install -d -m 750 "$D/var/lib/bcx" "$D/var/log/bcx"
    own bcx:bcx "$D/var/lib/bcx" "$D/var/log/bcx"
    if [ ! -e "$D/etc/bcx/bcx.conf" ]; then
        # The sample, with file paths where a service may write (ProtectSystem=strict).
        sed -e 's|^# log_path = .*|log_path = /var/log/bcx/alerts.jsonl|' \
            -e 's|^# archive_dir = .*|archive_dir = /var/lib/bcx/archive|' \
            "$SRC/bcx.conf" > "$D/etc/bcx/bcx.conf.new"
        chmod 640 "$D/etc/bcx/bcx.conf.new"
        own root:bcx "$D/etc/bcx/bcx.conf.new"
        mv "$D/etc/bcx/bcx.conf.new" "$D/etc/bcx/bcx.conf"
        say "installed $D/etc/bcx/bcx.conf: edit it, then start bcx.target"
    else
        say "kept the existing $D/etc/bcx/bcx.conf"
    fi
    [ -e "$D/etc/default/bcx" ] || install -D -m 644 "$SRC/init.d/bcx.default" "$D/etc/default/bcx"
    # Like the config, the admin's once installed (it names the alert log's path).
    [ -e "$D/etc/logrotate.d/bcx" ] \
        || install -D -m 644 "$SRC/init.d/bcx.logrotate" "$D/etc/logrotate.d/bcx"
    if [ -n "$D" ]; then
        put 644 "$SRC/init.d/bcx.sysusers" "$D/usr/lib/sysusers.d/bcx.conf"
        put 644 "$SRC/init.d/bcx.tmpfiles" "$D/usr/lib/tmpfiles.d/bcx.conf"
        have_bcx_user && [ "$(id -u)" -eq 0 ] \
            || say "no bcx user here: ownership (bcx.conf root:bcx, /var/lib/bcx and" \
                   "/var/log/bcx bcx:bcx) is recorded in /usr/lib/tmpfiles.d/bcx.conf;" \
                   "the package runs systemd-sysusers, then systemd-tmpfiles --create"
    fi
    put 644 "$SRC/init.d/bcx-init-functions" "$D$PREFIX/share/bcx/init-functions"
    put 644 "$SRC/README.md" "$D$PREFIX/share/doc/bcx/README.md"
    install_assets
    for unit in "${UNITS[@]}" bcx.target; do
        put 644 "$SRC/init.d/$unit" "$D$UNITDIR/$unit"
    done
    for script in "${SCRIPTS[@]}"; do
        put 755 "$SRC/init.d/$script" "$D/etc/init.d/$script"
    done
}

enable_services() {
    [ -n "$D" ] && return 0
    if systemd_running; then
        systemctl daemon-reload
        systemctl enable --quiet bcx.target "${UNITS[@]}"
        say "enabled bcx.target; start it with: systemctl start bcx.target"
    elif command -v update-rc.d >/dev/null; then
        for script in "${SCRIPTS[@]}"; do
            update-rc.d "$script" defaults >/dev/null
        done
        say "enabled the init scripts; start them with: service bcx-tracker start (etc.)"
    else
        say "no systemd and no update-rc.d: start /etc/init.d/bcx-* from your init system"
    fi
}

migrate_keys() {
    # Keys renamed between versions move to their new names; harmless when there is nothing
    # to move, and skipped (with the command to run later) when Redis is not reachable yet.
    [ -n "$D" ] && return 0
    if "$PREFIX/bin/bcx" migrate --config /etc/bcx/bcx.conf; then
        return 0
    fi
    say "bcx migrate did not finish; run it once Redis is reachable: $PREFIX/bin/bcx migrate"
}

do_install() {
    check_root
    create_user
    install_program
    install_files
    migrate_keys
    enable_services
}

do_uninstall() {
    check_root
    if systemd_running; then
        systemctl disable --now --quiet bcx.target "${UNITS[@]}" 2>/dev/null || true
    elif [ -z "$D" ]; then
        for script in "${SCRIPTS[@]}"; do
            [ -x "/etc/init.d/$script" ] && "/etc/init.d/$script" stop || true
            command -v update-rc.d >/dev/null && update-rc.d -f "$script" remove >/dev/null
        done
    fi
    for unit in "${UNITS[@]}" bcx.target; do rm -f "$D$UNITDIR/$unit"; done
    rm -f "$D/usr/lib/sysusers.d/bcx.conf" "$D/usr/lib/tmpfiles.d/bcx.conf"
    for script in "${SCRIPTS[@]}"; do rm -f "$D/etc/init.d/$script"; done
    systemd_running && systemctl daemon-reload
    rm -rf "$D$PREFIX"
    # The init scripts' pidfile directory; empty once the services are stopped.
    [ -z "$D" ] && rm -rf /run/bcx
    if [ "${PURGE:-0}" = 1 ]; then
        rm -rf "$D/etc/bcx" "$D/etc/default/bcx" "$D/etc/logrotate.d/bcx" "$D/var/lib/bcx" \
            "$D/var/log/bcx"
        if [ -z "$D" ] && getent passwd bcx >/dev/null; then userdel bcx; fi
        say "removed BCX with its config, data, logs and user"
    else
        say "removed BCX; kept /etc/bcx, /etc/default/bcx, /etc/logrotate.d/bcx, /var/lib/bcx," \
            "/var/log/bcx and the bcx user (make uninstall PURGE=1 removes them)"
    fi
}

case "${1:-}" in
    install) do_install ;;
    uninstall) do_uninstall ;;
    *) echo "usage: $0 install|uninstall" >&2; exit 2 ;;
esac
