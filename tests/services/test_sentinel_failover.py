"""``--backplane redis+sentinel://...`` with real parts: a master and a replica
(``redis-server --replicaof``), three Sentinels (``redis-server --sentinel``), all on free
ports, two dashstream instances on them. The master is killed with SIGKILL while a shared
ticker streams: the Sentinels promote the replica, both instances reconnect to it, the
screens see the backplane ``down`` and then ``up``, and what each watcher received has no
duplicate and no gap that was not signalled."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.fleet import Recorder, ready
from tests.services import RedisServer, _stop_process, _tail
from tests.support import ServerProcess, free_port, scaled, wait_until

pytestmark = pytest.mark.timeout(150)

MASTER = "dashmaster"
STREAMS = '[streams.tick]\nsource = "ticker"\nrate = 20.0\n'


class ReplicaServer(RedisServer):
    def __init__(self, master: RedisServer):
        super().__init__()
        self.master = master

    def command_line(self) -> list[str]:
        return [*super().command_line(), "--replicaof", "127.0.0.1", str(self.master.port)]


class SentinelServer:
    """``redis-server CONF --sentinel`` watching ``master`` (quorum 2, down after 1 s)."""

    def __init__(self, master: RedisServer):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="dashstream-sentinel-"))
        self.log = self.dir / "sentinel.log"
        # Sentinel rewrites its file as it learns the fleet: it must be its own, writable.
        self.conf = self.dir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndaemonize no\ndir {self.dir}\nlogfile {self.log}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {master.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
            f"sentinel parallel-syncs {MASTER} 1\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "SentinelServer":
        self.proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", str(self.conf), "--sentinel"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        return self

    def command(self, *words: str) -> str:
        result = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *words],
                                capture_output=True, text=True, timeout=scaled(5))
        if result.returncode != 0 or result.stdout.startswith("Could not connect"):
            raise ConnectionError(result.stdout + result.stderr)
        return result.stdout

    def master_port(self) -> int:
        return int(self.command("SENTINEL", "get-master-addr-by-name", MASTER).split()[1])

    def knows(self) -> tuple[int, int]:
        """(replicas, other Sentinels) this Sentinel has found."""
        replicas = self.command("SENTINEL", "replicas", MASTER).count("\nflags\n")
        others = self.command("SENTINEL", "sentinels", MASTER).count("\nflags\n")
        return replicas, others

    def stop(self) -> None:
        _stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def output(self) -> str:
        return _tail(self.log)


def unsignalled_problems(messages: list[dict]) -> list[str]:
    """Duplicates, and jumps in ``seq`` (or a new epoch) on a message without ``gap``."""
    problems, seen, previous = [], set(), None
    for message in messages:
        key = (message["epoch"], message["seq"])
        if key in seen:
            problems.append(f"duplicate {key}")
        seen.add(key)
        if previous is not None and not message.get("gap"):
            if message["epoch"] != previous["epoch"]:
                problems.append(f"new epoch without gap at {key}")
            elif message["seq"] != previous["seq"] + 1:
                problems.append(f"seq {previous['seq']} -> {message['seq']} without gap")
        previous = message
    return problems


def test_a_killed_master_is_replaced_and_every_instance_follows(tmp_path):
    master = RedisServer()
    replica = ReplicaServer(master)
    sentinels = [SentinelServer(master) for _ in range(3)]
    instances: list[ServerProcess] = []
    watchers: list[Recorder] = []
    config = tmp_path / "streams.toml"
    config.write_text(STREAMS)
    try:
        master.start()
        replica.start()
        wait_until(lambda: "master_link_status:up" in replica.command("INFO", "replication"), timeout=15,
                   message="the replica in sync")
        for sentinel in sentinels:
            sentinel.start()
        wait_until(lambda: all(s.knows() == (1, 2) for s in sentinels), timeout=30,
                   message="each Sentinel knows the replica and the two others")
        url = "redis+sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in sentinels) + f"/{MASTER}/0"
        for _ in range(2):
            instances.append(ServerProcess("--backplane", url, "--config", str(config)).start())
        for instance in instances:
            wait_until(lambda instance=instance: ready(instance), timeout=15, message=f"{instance.port} ready")
        watchers = [Recorder(f"{instance.ws}/ws/tick", reconnect=True, control=True) for instance in instances]
        for watcher in watchers:
            watcher.wait_data(10)

        master.kill()
        for watcher in watchers:
            watcher.wait_control(lambda m: m.get("control") == "backplane" and m.get("state") == "down", timeout=20)
        wait_until(lambda: all(s.master_port() == replica.port for s in sentinels), timeout=30,
                   message="the Sentinels promote the replica")
        for watcher in watchers:
            down = next(i for i, m in enumerate(watcher.controls) if m.get("state") == "down")
            watcher.wait_control(lambda m, down=down, w=watcher: m.get("control") == "backplane"
                                 and m.get("state") == "up" and w.controls.index(m) > down, timeout=30)
        for instance in instances:
            wait_until(lambda instance=instance: ready(instance), timeout=15, message=f"{instance.port} ready again")
        counts = [len(watcher.data) for watcher in watchers]
        for watcher, count in zip(watchers, counts):
            watcher.wait_data(count + 20, timeout=15)  # the ticker goes on, on the new master
        for watcher in watchers:
            assert unsignalled_problems(watcher.data) == [], watcher.seqs()
        assert "Traceback" not in "".join(instance.output() for instance in instances)
    except AssertionError as failure:
        logs = "\n".join([*(f"--- instance {i.port} ---\n{i.output()[-5000:]}" for i in instances),
                          *(f"--- sentinel {s.port} ---\n{s.output()}" for s in sentinels),
                          f"--- replica ---\n{replica.output()}"])
        raise AssertionError(f"{failure}\n{logs}") from None
    finally:
        for watcher in watchers:
            watcher.close()
        for instance in instances:
            instance.stop()
            instance.discard_log()
        for sentinel in sentinels:
            sentinel.stop()
        replica.stop()
        master.stop()
