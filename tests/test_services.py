"""Boot-time services: `bcx status`, the systemd units, the LSB init scripts (really starting
each component against the test redis-server) and `make install DESTDIR=...`."""

from __future__ import annotations

import configparser
import contextlib
import getpass
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from bcx.cli import main
from bcx.heartbeat import Heartbeat
from bcx.keys import Keys
from tests.support import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
INITD = ROOT / "init.d"
VENV_BIN = Path(sys.executable).parent
COMPONENTS = {"tracker": "tracker", "watcher": "watcher", "server": "server", "web": "web"}
UNITS = [f"bcx-{name}.service" for name in COMPONENTS] + ["bcx-tracker@.service", "bcx.target"]


# --------------------------------------------------------------------------- bcx status


@pytest.fixture
def conf(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "bcx.conf"
    path.write_text(f"[redis]\nurl = {redis_url}\n")
    return path


def status(conf: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["status", "--config", str(conf), *args])
    return result.exit_code, result.output


def beat(r: redis.Redis, keys: Keys, component: str) -> None:
    Heartbeat(r, keys, component, ttl=30).beat()


def test_status_lists_every_expected_component_and_fails_when_one_is_down(r, keys, conf):
    beat(r, keys, "tracker")
    code, out = status(conf)
    assert code == 1
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert rows == {"tracker": "up", "watcher.history": "DOWN", "watcher.rules": "DOWN",
                    "server": "DOWN", "web": "DOWN"}


def test_status_exits_zero_when_every_component_beats(r, keys, conf):
    for name in ("tracker", "watcher.history", "watcher.rules", "server", "web"):
        beat(r, keys, name)
    assert status(conf)[0] == 0


def test_status_component_group_name_checks_all_its_threads(r, keys, conf):
    beat(r, keys, "watcher.history")
    code, out = status(conf, "--component", "watcher", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["healthy"] is False
    assert {name: item["up"] for name, item in report["components"].items()} == {
        "watcher.history": True, "watcher.rules": False}
    beat(r, keys, "watcher.rules")
    assert status(conf, "--component", "watcher")[0] == 0


def test_status_of_a_cleared_heartbeat_is_down(r, keys, conf):
    heartbeat = Heartbeat(r, keys, "server", ttl=30)
    heartbeat.beat()
    heartbeat.clear()
    assert status(conf, "--component", "server")[0] == 1


def test_status_since_ignores_a_heartbeat_left_by_an_earlier_process(r, keys, conf):
    beat(r, keys, "tracker")
    later = int(r.hget(keys.heartbeat("tracker"), "time")) + 1
    assert status(conf, "--component", "tracker", "--since", str(later))[0] == 1
    assert status(conf, "--component", "tracker", "--wait", "300ms")[0] == 1


def test_status_of_an_unknown_component_is_an_error_naming_it(r, keys, conf):
    result = CliRunner().invoke(main, ["status", "--config", str(conf), "--component", "nope"])
    assert result.exit_code == 2
    assert "unknown component 'nope'" in result.output and "tracker" in result.output


def test_status_exits_three_when_redis_is_unreachable(tmp_path):
    path = tmp_path / "bcx.conf"
    path.write_text(f"[redis]\nurl = redis://127.0.0.1:{free_port()}/0\nsocket_timeout = 1s\n")
    code, out = status(path)
    assert code == 3
    assert "cannot read heartbeats" in out


# --------------------------------------------------------------------------- systemd units


def read_unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(INITD / name)
    return parser


def test_units_pass_systemd_analyze_verify(tmp_path):
    # The units name /opt/bcx/bin; verify checks that executables exist, so it reads copies
    # pointing at this checkout's virtualenv. Warnings count as failures too.
    for name in UNITS:
        text = (INITD / name).read_text().replace("/opt/bcx/bin/", f"{VENV_BIN}/")
        (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *UNITS],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not [line for line in output.splitlines()
                if str(tmp_path) in line or "bcx" in line], output


@pytest.mark.parametrize("component", [*COMPONENTS, "tracker@"])
def test_unit_is_hardened_restarts_on_failure_and_checks_its_heartbeat(component):
    unit = read_unit(f"bcx-{component}.service")
    assert {"network-online.target", "redis-server.service"} <= set(unit["Unit"]["After"].split())
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    assert service["User"] == "bcx"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "yes"
    assert set(service["ReadWritePaths"].split()) == {"/var/lib/bcx", "/var/log/bcx"}
    # Health, not a live pid: ready and kept alive only by heartbeats (bcx/sdnotify.py).
    assert service["Type"] == "notify"
    assert service["WatchdogSec"] == "90s"
    assert service["NotifyAccess"] == ("all" if component == "web" else "main")
    assert unit["Install"]["WantedBy"] == "bcx.target"


def test_tracker_template_unit_runs_the_instance_with_its_own_settings():
    unit = (INITD / "bcx-tracker@.service").read_text().splitlines()
    assert "Environment=BCX_TRACKER_INSTANCE=%i" in unit
    # The instance's own file comes after the shared one, so its symbols win.
    files = [line for line in unit if line.startswith("EnvironmentFile=")]
    assert files == ["EnvironmentFile=-/etc/default/bcx",
                     "EnvironmentFile=-/etc/default/bcx-tracker-%i"]
    assert "ExecStart=/opt/bcx/bin/bcx tracker" in unit


# --------------------------------------------------------------------------- init scripts


@pytest.fixture
def service_env(tmp_path: Path, redis_url: str) -> Iterator[dict[str, str]]:
    """The environment of an init script run against the test Redis: pidfiles, logs and
    working directory in a temp dir, the current user, this checkout's bcx."""
    for name in ("run", "log", "work"):
        (tmp_path / name).mkdir()
    conf = tmp_path / "bcx.conf"
    conf.write_text(
        f"[redis]\nurl = {redis_url}\n"
        # Nothing listens there: the tracker retries a loopback port, harmless and offline.
        f"[exchange:coinbase]\nurl = ws://127.0.0.1:{free_port()}/\nsymbols = BTC-USD\n"
        f"[tracker]\nheartbeat_ttl = 5s\n"
        f"[server]\nlog_path = {tmp_path / 'work' / 'alerts.jsonl'}\n"
        f"[watcher]\narchive_dir = {tmp_path / 'work' / 'archive'}\n"
        f"[web]\nbind = 127.0.0.1:{free_port()}\nworkers = 1\nthreads = 2\n")
    # The defaults file carries most settings (as /etc/default/bcx would); the environment
    # carries the rest and would win over it.
    defaults = tmp_path / "default-bcx"
    defaults.write_text(f"BCX_RUNDIR={tmp_path / 'run'}\nBCX_LOGDIR={tmp_path / 'log'}\n"
                        f"BCX_WORKDIR={tmp_path / 'work'}\nBCX_CONF={conf}\n"
                        "BCX_USER=nobody-that-exists\n")
    env = {"PATH": os.environ["PATH"], "BCX_DEFAULTS": str(defaults),
           "BCX_USER": getpass.getuser(), "BCX_BIN": str(VENV_BIN / "bcx"),
           "BCX_START_WAIT": "30", "BCX_STOP_WAIT": "15"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]  # the checkout under test, not the install
    env["BCX_TEST_RUNDIR"] = str(tmp_path / "run")
    yield env
    for pidfile in (tmp_path / "run").glob("*.pid"):
        # Only if a test failed half-way: never leave a daemon behind.
        # start-stop-daemon --background makes the daemon a session leader: its group
        # holds gunicorn's workers too.
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.killpg(int(pidfile.read_text()), signal.SIGKILL)


def initd(script: str, action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INITD / script), action], env=env, capture_output=True,
                          text=True, timeout=90)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not reaped it yet.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("component", COMPONENTS)
def test_init_script_starts_reports_and_stops_its_component(component, service_env, r, keys):
    script = f"bcx-{component}"
    pidfile = Path(service_env["BCX_TEST_RUNDIR"]) / f"{script}.pid"

    started = initd(script, "start", service_env)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "no heartbeat" not in started.stdout, started.stdout
    pid = int(pidfile.read_text())
    assert alive(pid)

    again = initd(script, "start", service_env)
    assert again.returncode == 0 and "already running" in again.stdout
    assert int(pidfile.read_text()) == pid

    state = initd(script, "status", service_env)
    assert state.returncode == 0, state.stdout + state.stderr
    assert "is running" in state.stdout and "heartbeat fresh" in state.stdout
    beats = [name for name in r.smembers(keys.components)
             if name == COMPONENTS[component] or name.startswith(COMPONENTS[component] + ".")]
    assert beats and all(r.exists(keys.heartbeat(name)) for name in beats)

    stopped = initd(script, "stop", service_env)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    wait_for(lambda: not alive(pid), timeout=20, message=f"{script} to exit")
    assert not pidfile.exists()
    assert not any(r.exists(keys.heartbeat(name)) for name in beats)

    gone = initd(script, "status", service_env)
    assert gone.returncode == 3 and "not running" in gone.stdout


def test_init_script_status_says_unhealthy_when_the_process_runs_without_heartbeat(
        service_env, r, keys):
    service_env["BCX_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    service_env["BCX_START_WAIT"] = "0"
    started = initd("bcx-server", "start", service_env)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        state = initd("bcx-server", "status", service_env)
        assert state.returncode == 150, state.stdout
        assert "heartbeat is missing" in state.stdout
    finally:
        assert initd("bcx-server", "stop", service_env).returncode == 0


def test_init_script_symlink_runs_a_named_tracker_with_its_own_defaults(
        service_env, r, keys, tmp_path):
    link = tmp_path / "bcx-tracker-east"
    link.symlink_to(INITD / "bcx-tracker")
    # The instance's defaults file: next to the shared one, named after the instance.
    Path(f"{service_env['BCX_DEFAULTS']}-tracker-east").write_text(
        "BCX_EXCHANGE_COINBASE_SYMBOLS=ETH-USD\n")
    pidfile = Path(service_env["BCX_TEST_RUNDIR"]) / "bcx-tracker-east.pid"
    started = subprocess.run([str(link), "start"], env=service_env, capture_output=True,
                             text=True, timeout=90)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "no heartbeat" not in started.stdout, started.stdout
        assert r.hget(keys.heartbeat("tracker.east"), "exchanges") == "coinbase"
        assert not r.exists(keys.heartbeat("tracker"))
        state = subprocess.run([str(link), "status"], env=service_env, capture_output=True,
                               text=True, timeout=90)
        assert state.returncode == 0 and "heartbeat fresh" in state.stdout, state.stdout
        log = (tmp_path / "log" / "bcx-tracker-east.log").read_text()
        assert "coinbase ETH-USD" in log and "BTC-USD" not in log
    finally:
        stopped = subprocess.run([str(link), "stop"], env=service_env, capture_output=True,
                                 text=True, timeout=90)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not pidfile.exists() and not r.exists(keys.heartbeat("tracker.east"))


def test_init_script_start_fails_when_the_component_exits(service_env, tmp_path):
    (tmp_path / "bcx.conf").write_text("[redis]\nurl = nowhere\n")
    started = initd("bcx-tracker", "start", service_env)
    assert started.returncode == 1
    assert "exited at start" in started.stdout
    assert not (Path(service_env["BCX_TEST_RUNDIR"]) / "bcx-tracker.pid").exists()


# --------------------------------------------------------------------------- make install


def manifest(root: Path) -> dict[str, tuple[str, str]]:
    """Every path under root: its mode and type, and a file's digest or a link's target."""
    out = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            content = "-> " + os.readlink(path)
        elif path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = "dir"
        out[str(path.relative_to(root))] = (oct(info.st_mode), content)
    return out


def source_snapshot(destination: Path) -> Path:
    """A copy of the checkout (tracked and new files, mtimes kept) so helpers editing the
    tree meanwhile cannot change what the two installs see."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def make_install(source: Path, destdir: Path, action: str = "install"
                 ) -> subprocess.CompletedProcess[str]:
    # Offline: the dependencies are not fetched (the test checks the layout); the package
    # itself comes from the wheel the checkout's .venv builds. `-o venv`: the snapshot must
    # never (re)install the checkout's .venv, which would point it at the snapshot.
    return subprocess.run(["make", "-s", "-o", "venv", "-C", str(source), action,
                           f"DESTDIR={destdir}",
                           f"VENV={VENV_BIN.parent}", "BCX_PIP_OPTS=--no-deps --no-index"],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict, dict]:
    source = source_snapshot(tmp_path_factory.mktemp("src"))
    destdir = tmp_path_factory.mktemp("destdir")
    first = make_install(source, destdir)
    assert first.returncode == 0, first.stdout + first.stderr
    before = manifest(destdir)
    second = make_install(source, destdir)
    assert second.returncode == 0, second.stdout + second.stderr
    return source, destdir, before, manifest(destdir)


EXPECTED_MODES = {
    "etc/bcx/bcx.conf": 0o640,
    "etc/default/bcx": 0o644,
    **{f"lib/systemd/system/{unit}": 0o644 for unit in UNITS},
    **{f"etc/init.d/bcx-{name}": 0o755 for name in COMPONENTS},
    "opt/bcx/bin/bcx": 0o755,
    "opt/bcx/bin/python": None,
    "opt/bcx/share/bcx/init-functions": 0o644,
    "etc/logrotate.d/bcx": 0o644,
    "usr/lib/sysusers.d/bcx.conf": 0o644,
    "usr/lib/tmpfiles.d/bcx.conf": 0o644,
    "var/lib/bcx": 0o750,
    "var/log/bcx": 0o750,
}


def test_make_install_lays_out_the_expected_files_with_their_modes(installed):
    _, destdir, _, _ = installed
    for name, mode in EXPECTED_MODES.items():
        path = destdir / name
        assert path.exists(), name
        if mode is not None:
            assert path.stat().st_mode & 0o7777 == mode, name
    assert (destdir / "etc/bcx/bcx.conf").read_text().count(
        "log_path = /var/log/bcx/alerts.jsonl") == 1
    assert (destdir / "opt/bcx/bin/bcx").read_text().startswith("#!/opt/bcx/bin/python")
    assert str(destdir) not in (destdir / "opt/bcx/pyvenv.cfg").read_text()
    site = next((destdir / "opt/bcx/lib").glob("python3*/site-packages"))
    assert (site / "bcx/status.py").is_file() and (site / "web/liveness.py").is_file()
    assert list((site / "web/templates").glob("*.html"))


def test_make_install_a_second_time_changes_nothing(installed):
    _, _, before, after = installed
    assert before == after


def test_make_install_never_overwrites_an_existing_config(installed):
    source, destdir, _, _ = installed
    conf = destdir / "etc/bcx/bcx.conf"
    original = conf.read_text()
    conf.write_text("[redis]\nurl = redis://127.0.0.1:6390/0\n")
    try:
        result = make_install(source, destdir)
        assert result.returncode == 0, result.stderr
        assert conf.read_text() == "[redis]\nurl = redis://127.0.0.1:6390/0\n"
        assert "kept the existing" in result.stdout
    finally:
        conf.write_text(original)


def test_make_uninstall_removes_the_program_and_keeps_the_config(installed, tmp_path):
    source, destdir, _, _ = installed
    copy = tmp_path / "dest"
    shutil.copytree(destdir, copy, symlinks=True)
    for _ in range(2):
        result = make_install(source, copy, "uninstall")
        assert result.returncode == 0, result.stdout + result.stderr
    assert not (copy / "opt/bcx").exists()
    assert not list((copy / "lib/systemd/system").glob("bcx*"))
    assert not (copy / "usr/lib/tmpfiles.d/bcx.conf").exists()
    assert not list((copy / "etc/init.d").glob("bcx*"))
    assert (copy / "etc/bcx/bcx.conf").exists()


def test_a_staged_install_puts_units_where_packages_keep_them(installed):
    # Was: /etc/systemd/system, the administrator's directory, even for a package.
    _, destdir, _, _ = installed
    assert sorted(path.name for path in (destdir / "lib/systemd/system").iterdir()) == sorted(
        UNITS)
    assert not (destdir / "etc/systemd/system").exists()


def test_a_staged_install_records_the_ownership_it_cannot_set(installed):
    # Was: bcx.conf staged root:root with nothing telling the packager it must be root:bcx.
    _, destdir, _, _ = installed
    tmpfiles = (destdir / "usr/lib/tmpfiles.d/bcx.conf").read_text().splitlines()
    assert "z /etc/bcx/bcx.conf 0640 root bcx -" in tmpfiles
    assert "d /var/lib/bcx 0750 bcx bcx -" in tmpfiles
    assert "d /var/log/bcx 0750 bcx bcx -" in tmpfiles
    sysusers = (destdir / "usr/lib/sysusers.d/bcx.conf").read_text()
    assert any(line.split()[:2] == ["u", "bcx"] for line in sysusers.splitlines()
               if line and not line.startswith("#"))
    assert (destdir / "etc/bcx/bcx.conf").stat().st_mode & 0o777 == 0o640


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("systemd-sysusers")
                    or not shutil.which("systemd-tmpfiles"),
                    reason="needs root and systemd-sysusers/systemd-tmpfiles")
def test_what_a_package_postinst_runs_gives_the_staged_tree_its_owners(installed, tmp_path):
    # The packager's two steps, run on a copy of the staged tree: the config ends root:bcx.
    _, destdir, _, _ = installed
    root = tmp_path / "root"
    for part in ("etc", "usr/lib/sysusers.d", "usr/lib/tmpfiles.d", "var"):
        shutil.copytree(destdir / part, root / part, symlinks=True)
    for args in (["systemd-sysusers", f"--root={root}"],
                 ["systemd-tmpfiles", f"--root={root}", "--create"]):
        done = subprocess.run(args, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    users = {line.split(":")[0]: line.split(":") for line in
             (root / "etc/passwd").read_text().splitlines()}
    uid, gid = int(users["bcx"][2]), int(users["bcx"][3])
    conf = (root / "etc/bcx/bcx.conf").stat()
    assert (conf.st_uid, conf.st_gid, conf.st_mode & 0o777) == (0, gid, 0o640)
    for directory in ("var/lib/bcx", "var/log/bcx"):
        info = (root / directory).stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (uid, gid, 0o750)


def vendored_by_templates() -> set[str]:
    found = set()
    for template in (ROOT / "web/templates").glob("*.html"):
        found |= set(re.findall(r"package='highcharts', filename='([^']+)'",
                                template.read_text()))
    return found


def test_only_the_highcharts_files_the_pages_load_are_installed(installed):
    # Was: every built file of the npm package (maps, modules, themes) under /opt.
    _, destdir, _, _ = installed
    vendor = destdir / "opt/bcx/share/bcx/node_modules/highcharts"
    if not (ROOT / "node_modules/highcharts").is_dir():
        pytest.skip("node_modules/highcharts is missing (make setup)")
    installed_files = {str(path.relative_to(vendor)) for path in vendor.rglob("*")
                       if path.is_file()}
    assert vendored_by_templates() >= {"highstock.js"}
    assert installed_files == vendored_by_templates() | {"LICENSE.txt"}


def test_the_installed_pages_find_every_script_they_load(installed, tmp_path):
    from bcx import config as configmod
    from web import create_app

    _, destdir, _, _ = installed
    if not (ROOT / "node_modules/highcharts").is_dir():
        pytest.skip("node_modules/highcharts is missing (make setup)")
    conf = tmp_path / "bcx.conf"
    conf.write_text("[redis]\nurl = redis://127.0.0.1:1/0\n")
    app = create_app({"BCX_CONFIG": configmod.load(str(conf), env={}), "TESTING": True,
                      "BCX_VENDOR_DIR": str(destdir / "opt/bcx/share/bcx/node_modules")})
    client = app.test_client()
    scripts = set()
    for page in ("/", "/chart/coinbase/BTC-USD", "/alerts", "/status"):
        response = client.get(page)
        assert response.status_code == 200, page
        scripts |= set(re.findall(r'<script src="(/vendor/[^"]+)"', response.text))
    assert scripts
    for script in scripts:
        assert client.get(script).status_code == 200, script


def test_a_second_install_drops_highcharts_files_an_earlier_version_copied(installed, tmp_path):
    source, destdir, _, _ = installed
    copy = tmp_path / "dest"
    shutil.copytree(destdir, copy, symlinks=True)
    stray = copy / "opt/bcx/share/bcx/node_modules/highcharts/modules/exporting.js"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("old")
    (copy / "opt/bcx/share/bcx/node_modules/highcharts/themes").mkdir()
    (copy / "opt/bcx/share/bcx/node_modules/highcharts/themes/dark.js").write_text("old")
    result = make_install(source, copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not stray.exists()
    assert not (copy / "opt/bcx/share/bcx/node_modules/highcharts/themes").exists()


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed")
def test_logrotate_rules_rotate_the_logs_bcx_writes_without_losing_lines(installed, tmp_path):
    _, destdir, _, _ = installed
    logs = tmp_path / "log"
    logs.mkdir()
    me = f"{getpass.getuser()} {os.getgid()}"
    rules = (destdir / "etc/logrotate.d/bcx").read_text()
    rules = rules.replace("/var/log/bcx", str(logs)).replace("bcx bcx", me)
    (tmp_path / "rules").write_text(rules)
    # A daemon's output as start-stop-daemon --output leaves it: opened once, append mode.
    daemon_log = logs / "bcx-tracker.log"
    held = open(daemon_log, "a", encoding="utf-8")  # noqa: SIM115 - held open like a daemon
    try:
        held.write("before\n")
        held.flush()
        (logs / "alerts.jsonl").write_text('{"id": "1-0"}\n')
        result = subprocess.run(["logrotate", "--force", "--state", str(tmp_path / "state"),
                                 str(tmp_path / "rules")], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        held.write("after\n")
        held.flush()
    finally:
        held.close()
    # copytruncate: the old lines in .1, the daemon's next line at the start of the file.
    assert (logs / "bcx-tracker.log.1").read_text() == "before\n"
    assert daemon_log.read_text() == "after\n"
    # The alert log is renamed and created again (the server opens it per event).
    assert (logs / "alerts.jsonl.1").read_text() == '{"id": "1-0"}\n'
    assert (logs / "alerts.jsonl").read_text() == ""
    assert (logs / "alerts.jsonl").stat().st_mode & 0o777 == 0o640
