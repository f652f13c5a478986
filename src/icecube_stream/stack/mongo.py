"""A MongoDB-wire server: `mongod` when one is on PATH, otherwise FerretDB on SQLite.

FerretDB is built from its Go module rather than with a bare `go install`: the published
module leaves `build/version/version.txt` empty, and a binary built from it panics at start.
The build writes that file with the pinned version first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from icecube_stream.connections import mongo_options
from icecube_stream.stack import credentials, pki
from icecube_stream.stack.pki import Issued
from icecube_stream.stack.service import Service, StackError, run_logged

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"


def ferretdb_argv(
    binary: Path, host: str, port: int, state_dir: Path, tls: Issued | None = None
) -> list[str]:
    """Plain, or secured (`tls`): TLS only, and FerretDB's SCRAM authentication (experimental in
    1.24, `--test-enable-new-auth`) with the stack's admin user made on first start."""
    listen = [f"--listen-addr={host}:{port}"]
    if tls is not None:
        listen = [
            "--listen-addr=",
            f"--listen-tls={host}:{port}",
            f"--listen-tls-cert-file={tls.cert}",
            f"--listen-tls-key-file={tls.key}",
            "--test-enable-new-auth",
            f"--setup-username={credentials.ADMIN}",
            "--setup-database=admin",
        ]
    return [
        str(binary),
        "--handler=sqlite",
        f"--sqlite-url=file:{state_dir / 'data'}/",
        *listen,
        f"--state-dir={state_dir}",
        "--telemetry=disable",
        "--debug-addr=-",
        "--log-level=warn",
    ]


def mongod_argv(binary: str, host: str, port: int, state_dir: Path) -> list[str]:
    return [binary, "--dbpath", str(state_dir / "data"), "--bind_ip", host, "--port", str(port)]


class Mongo(Service):
    name = "mongo"

    @property
    def ports(self) -> list[int]:
        return [self.settings.mongo_port]

    @property
    def endpoint(self) -> str:
        return self.settings.mongo_url

    @property
    def ferretdb_binary(self) -> Path:
        return self.settings.cache_dir / "ferretdb" / self.settings.ferretdb_version / "ferretdb"

    def install(self) -> None:
        if shutil.which("mongod") or self._ferretdb_version_ok():
            return
        if not shutil.which("go"):
            raise StackError("mongo: no `mongod` on PATH and no `go` to build FerretDB with")
        version = self.settings.ferretdb_version
        build = self.ferretdb_binary.parent
        build.mkdir(parents=True, exist_ok=True)
        log = build / "build.log"
        run_logged(["go", "mod", "download", "-json", f"{FERRETDB_MODULE}@{version}"], log,
                   f"downloading FerretDB {version}")  # fmt: skip
        module_dir = Path(json.loads(log.read_text())["Dir"])
        source = build / "src"
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(module_dir, source)
        for path in [source, *source.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)  # the module cache is read-only
        (source / "build" / "version" / "version.txt").write_text(version + "\n")
        run_logged(["go", "build", "-o", str(self.ferretdb_binary), "./cmd/ferretdb"],
                   build / "build.log", f"building FerretDB {version}", cwd=source)  # fmt: skip
        shutil.rmtree(source)
        if not self._ferretdb_version_ok():
            raise StackError(f"the FerretDB built at {self.ferretdb_binary} does not run")

    def _ferretdb_version_ok(self) -> bool:
        if not self.ferretdb_binary.is_file():
            return False
        result = subprocess.run(
            [str(self.ferretdb_binary), "--version"], capture_output=True, text=True, check=False
        )
        return f"version: {self.settings.ferretdb_version}" in result.stdout

    def prepare(self) -> None:
        (self.state_dir / "data").mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        host, port = self.settings.host, self.settings.mongo_port
        mongod = shutil.which("mongod")
        if mongod and self.settings.stack_secure:
            raise StackError("mongo: the secured stack runs FerretDB; take `mongod` off PATH")
        if mongod:
            return mongod_argv(mongod, host, port, self.state_dir)
        tls = None
        if self.settings.stack_secure:
            hosts = sorted({host, "localhost"})
            tls = pki.Authority(self.settings.state_dir / "pki").issue(self.name, hosts)
        return ferretdb_argv(self.ferretdb_binary, host, port, self.state_dir, tls)

    def env(self) -> dict[str, str]:
        """Secured: the admin's password for FerretDB's first start, which reads it from this
        variable or a flag only (the variable stays out of `ps`)."""
        env = super().env()
        if self.settings.stack_secure:
            password = credentials.secret(self.settings, f"mongo-{credentials.ADMIN}")
            env["FERRETDB_SETUP_PASSWORD"] = password
        return env

    def healthy(self) -> bool:
        """A `ping` command answered over the MongoDB wire protocol."""
        owner = self.settings
        if owner.stack_secure:
            owner = credentials.as_user(owner, credentials.ADMIN)
        client: MongoClient[dict[str, object]] = MongoClient(
            self.endpoint,
            serverSelectionTimeoutMS=1000,
            connectTimeoutMS=1000,
            **mongo_options(owner),
        )
        try:
            return client.admin.command("ping").get("ok") == 1.0
        except PyMongoError:
            return False
        finally:
            client.close()
