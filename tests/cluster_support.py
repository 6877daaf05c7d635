"""Real Redis Cluster and Sentinel deployments on loopback for the tests and benchmarks, from the
same ``redis-server`` binary as the standalone fixture.

Every node gets a free port and an explicit ``cluster-port`` (the default, port + 10000, may be
taken), its own directory and config file. Nodes can be killed and restarted by index.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bcx.config import RedisConfig
from bcx.redisconn import from_config
from tests.support import free_port, wait_for


def _binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                   else None)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run `make test`, which installs it with "
                           "apt-get (Debian packages redis-server and redis-tools)")
    return found


class Node:
    """One redis-server (or sentinel) process with a config file in its own directory."""

    def __init__(self, directory: Path, lines: list[str], port: int, sentinel: bool = False):
        self.directory = directory
        self.port = port
        self.sentinel = sentinel
        self.lines = lines
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        # Sentinel rewrites its config file, so it is written once, not on every start.
        self.conf = directory / ("sentinel.conf" if sentinel else "redis.conf")
        self.conf.write_text("\n".join(lines) + "\n")

    def client(self, **options: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=5, **options)  # type: ignore[arg-type]

    def start(self) -> None:
        args = [_binary("redis-server"), str(self.conf)]
        if self.sentinel:
            args.append("--sentinel")
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        client = self.client()
        try:
            wait_for(client.ping, timeout=15, message=f"redis-server on port {self.port}")
        except AssertionError:
            self.stop()
            log = self.directory / "redis.log"
            raise RuntimeError("redis-server did not start: "
                               + (log.read_text()[-2000:] if log.exists() else "no log")) from None
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: the node vanishes as in a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _node_lines(directory: Path, port: int, extra: list[str]) -> list[str]:
    return [f"port {port}", "bind 127.0.0.1", f"dir {directory}", 'save ""',
            "appendonly no", "protected-mode yes", f"logfile {directory / 'redis.log'}",
            *extra]


class RedisClusterDeployment:
    """``masters`` masters with ``replicas`` replicas each, created with ``redis-cli --cluster
    create ... --cluster-yes``. ``url`` names the first node (any node will do)."""

    def __init__(self, directory: Path, masters: int = 3, replicas: int = 1,
                 extra: list[str] | None = None):
        self.nodes: list[Node] = []
        for index in range(masters * (1 + replicas)):
            port, bus = free_port(), free_port()
            node_dir = directory / f"node-{index}"
            node_dir.mkdir(parents=True, exist_ok=True)
            self.nodes.append(Node(node_dir, _node_lines(node_dir, port, [
                "cluster-enabled yes", f"cluster-port {bus}",
                f"cluster-config-file {node_dir / 'nodes.conf'}",
                "cluster-node-timeout 1000", "cluster-replica-validity-factor 0",
                *(extra or [])]), port))
        self.replicas = replicas

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run([_binary("redis-cli"), "--cluster", "create", *addresses,
                        "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        wait_for(self._ready, timeout=30, message="cluster_state:ok on every node")

    def _ready(self) -> bool:
        for node in self.nodes:
            if not node.running:
                continue
            client = node.client()
            try:
                info = client.cluster("info")
                state = info.get("cluster_state") if isinstance(info, dict) else None
                if state != "ok":
                    return False
            finally:
                client.close()
        return True

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port,
                                  decode_responses=True)

    def master_of(self, key: str) -> Node:
        """The node that currently serves ``key``'s slot as master."""
        client = self.client()
        try:
            node = client.get_node_from_key(key)
            return next(item for item in self.nodes if item.port == node.port)
        finally:
            client.close()

    def masters(self) -> list[Node]:
        client = self.client()
        try:
            ports = {node.port for node in client.get_primaries()}
        finally:
            client.close()
        return [node for node in self.nodes if node.port in ports]

    def flushall(self) -> None:
        for node in self.masters():
            client = node.client()
            try:
                client.flushall()
            finally:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelDeployment:
    """One master, ``replicas`` replicas and ``sentinels`` sentinels watching the master as
    ``name`` with quorum 2 and fast failure detection."""

    def __init__(self, directory: Path, name: str = "bcx-master", replicas: int = 1,
                 sentinels: int = 3, extra: list[str] | None = None):
        self.name = name
        master_port = free_port()
        master_dir = directory / "master"
        master_dir.mkdir(parents=True, exist_ok=True)
        self.master = Node(master_dir, _node_lines(master_dir, master_port, extra or []),
                           master_port)
        self.replicas: list[Node] = []
        for index in range(replicas):
            port = free_port()
            node_dir = directory / f"replica-{index}"
            node_dir.mkdir(parents=True, exist_ok=True)
            self.replicas.append(Node(node_dir, _node_lines(node_dir, port, [
                f"replicaof 127.0.0.1 {master_port}", *(extra or [])]), port))
        self.sentinels: list[Node] = []
        for index in range(sentinels):
            port = free_port()
            node_dir = directory / f"sentinel-{index}"
            node_dir.mkdir(parents=True, exist_ok=True)
            self.sentinels.append(Node(node_dir, [
                f"port {port}", "bind 127.0.0.1", f"dir {node_dir}",
                f"logfile {node_dir / 'redis.log'}",
                f"sentinel monitor {name} 127.0.0.1 {master_port} 2",
                f"sentinel down-after-milliseconds {name} 1000",
                f"sentinel failover-timeout {name} 5000",
                f"sentinel parallel-syncs {name} 1",
            ], port, sentinel=True))

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{node.port}" for node in self.sentinels]

    @property
    def data_nodes(self) -> list[Node]:
        return [self.master, *self.replicas]

    def start(self) -> None:
        for node in self.data_nodes:
            node.start()
        for node in self.sentinels:
            node.start()
        wait_for(self._ready, timeout=30, message="sentinels agree on master and replicas")

    def _ready(self) -> bool:
        for node in self.sentinels:
            client = node.client()
            try:
                fields = client.sentinel_master(self.name)
                if int(fields.get("num-slaves", 0)) < len(self.replicas) or int(
                        fields.get("num-other-sentinels", 0)) < len(self.sentinels) - 1:
                    return False
            finally:
                client.close()
        return True

    def current_master_port(self) -> int:
        client = self.sentinels[0].client()
        try:
            _host, port = client.sentinel_get_master_addr_by_name(self.name)
            return int(port)
        finally:
            client.close()

    def node_on(self, port: int) -> Node:
        return next(node for node in self.data_nodes if node.port == port)

    def failover(self) -> int:
        """``SENTINEL FAILOVER`` and wait until a replica is the master; its port."""
        before = self.current_master_port()
        client = self.sentinels[0].client()
        try:
            client.execute_command("SENTINEL", "FAILOVER", self.name)
        finally:
            client.close()
        after = wait_for(lambda: (port := self.current_master_port()) != before
                         and self._is_master(port) and port, timeout=30,
                         message="a failed-over master")
        if self.node_on(before).running:
            # The old master becomes a replica of the new one once Sentinel reconfigures it.
            wait_for(lambda: not self._is_master(before), timeout=30,
                     message="the old master demoted")
        return after

    def _is_master(self, port: int) -> bool:
        client = self.node_on(port).client()
        try:
            return client.info("replication")["role"] == "master"
        finally:
            client.close()

    def stop(self) -> None:
        for node in [*self.sentinels, *self.data_nodes]:
            node.stop()


@dataclass
class Backend:
    """Where a test's BCX data lives: one standalone server or a cluster, with what a test
    needs to configure components for it and to read every key back."""

    mode: str
    url: str
    cluster: RedisClusterDeployment | None = None

    @property
    def redis(self) -> RedisConfig:
        return RedisConfig(url=self.url, mode=self.mode)

    @property
    def section(self) -> str:
        """The ``[redis]`` section of a bcx.conf for this backend."""
        return f"[redis]\nurl = {self.url}\nmode = {self.mode}\n"

    def client(self) -> Any:
        return from_config(self.redis)

    def keys(self) -> set[str]:
        """Every key, from every master."""
        nodes = self.cluster.masters() if self.cluster is not None else None
        clients = ([node.client() for node in nodes] if nodes is not None
                   else [redis.Redis.from_url(self.url, decode_responses=True)])
        found: set[str] = set()
        for client in clients:
            found.update(client.keys("*"))
            client.close()
        return found

    def flush(self) -> None:
        if self.cluster is not None:
            self.cluster.flushall()
            return
        client = redis.Redis.from_url(self.url)
        client.flushall()
        client.close()
