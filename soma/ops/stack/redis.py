"""Redis from Debian's `redis-server` package, run as our own child with its files in the state folder."""

from __future__ import annotations

import shutil
from urllib.parse import urlparse

from soma.errors import StackError
from soma.ops.processes import Daemon
from soma.ops.stack.system import apt_install, is_loopback, port_open
from soma.settings import Settings, env_name


class LocalRedis:
    def __init__(self, settings: Settings) -> None:
        url = urlparse(settings.redis_url_value())
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 6379
        self.password = url.password
        self.home = settings.stack.state_dir.resolve() / "redis"
        self.daemon = Daemon("redis", self.home / "redis.pid", "redis-server")

    def start(self) -> bool:
        """Start redis-server unless something already answers there; True when we started it."""
        if self.daemon.pid() is not None or port_open(self.host, self.port):
            return False
        if not is_loopback(self.host):
            raise StackError(f"redis: {env_name('redis_url')} points at {self.host}, which is not reachable")
        if shutil.which("redis-server") is None:
            apt_install("redis-server")
        self.home.mkdir(parents=True, exist_ok=True)
        conf = self.home / "redis.conf"
        lines = [
            f"bind {self.host}",
            f"port {self.port}",
            f"dir {self.home}",
            'save ""',
            "appendonly no",
            "protected-mode yes",
            "daemonize no",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        # The file may hold the password: readable by its owner only.
        conf.touch(mode=0o600)
        conf.write_text("\n".join(lines) + "\n")
        self.daemon.start(["redis-server", str(conf)], self.home / "redis.log")
        return True

    def stop(self) -> bool:
        return self.daemon.stop(grace_s=10)
