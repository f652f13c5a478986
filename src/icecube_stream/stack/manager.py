"""`stack up|down|status`: start, watch and stop the local services as plain processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from icecube_stream.config import Settings
from icecube_stream.stack import kafka, process
from icecube_stream.stack.alertmanager import Alertmanager
from icecube_stream.stack.blackbox import Blackbox
from icecube_stream.stack.kafka import Kafka
from icecube_stream.stack.mlflow_server import MlflowServer
from icecube_stream.stack.model_server import ModelServer
from icecube_stream.stack.mongo import Mongo
from icecube_stream.stack.ports import port_owner
from icecube_stream.stack.prometheus import Prometheus
from icecube_stream.stack.service import Service, StackError
from icecube_stream.stack.worker import Worker

SERVICES: dict[str, type[Service]] = {
    service.name: service
    for service in (
        Kafka,
        Mongo,
        MlflowServer,
        Alertmanager,
        Blackbox,
        Prometheus,
        ModelServer,
        Worker,
    )
}

INFRASTRUCTURE = [name for name, service in SERVICES.items() if service.infrastructure]

#: What each health means, for `stack status` and the docs.
HEALTH = {
    "healthy": "started by the stack and answering its health check",
    "unhealthy": "started by the stack, running, not answering its health check",
    "stopped": "not running (never started, or stopped by `stack down`)",
    "exited": "started by the stack and gone since (crashed or killed): read its log",
    "orphaned": "its supervisor is gone, its children still run: `stack up SERVICE` or "
    "`stack down SERVICE` stops them",
    "foreign": "not started by this stack, but something listens on its port",
}

Report = Callable[[str], None]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    endpoint: str
    pid: int | None
    health: str  # a key of HEALTH
    log: str
    infrastructure: bool

    @property
    def ok(self) -> bool:
        """Nothing to act on: healthy, or a pipeline component nobody started."""
        return self.health == "healthy" or (self.health == "stopped" and not self.infrastructure)


def select(settings: Settings, only: Sequence[str] | None = None) -> list[Service]:
    """The named services, or every service when none are named, in start order; `kafka` is
    every node of the cluster."""
    settings = kafka.cluster_settings(settings)
    names = list(only) if only else list(SERVICES)
    unknown = [name for name in names if name not in SERVICES]
    if unknown:
        raise StackError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICES)}")
    services: list[Service] = []
    for name in names:
        services += kafka.nodes(settings) if name == Kafka.name else [SERVICES[name](settings)]
    return services


def running(service: Service) -> process.PidRecord | None:
    """The service's process when the stack started it and it still runs."""
    record = process.PidRecord.load(service.pid_path)
    return record if record is not None and process.is_alive(record) else None


def status(settings: Settings, only: Sequence[str] | None = None) -> list[ServiceStatus]:
    return [_status(service) for service in select(settings, only)]


def _status(service: Service) -> ServiceStatus:
    record = process.PidRecord.load(service.pid_path)
    pid = None
    if record is None:
        health = "foreign" if service.listening() else "stopped"
    elif process.is_alive(record):
        health, pid = ("healthy" if service.healthy() else "unhealthy"), record.pid
    elif left := process.orphans(record):
        health, pid = "orphaned", left[0]
    else:
        health = "foreign" if service.listening() else "exited"
    return ServiceStatus(
        name=service.name,
        endpoint=service.endpoint,
        pid=pid,
        health=health,
        log=str(service.log_path),
        infrastructure=service.infrastructure,
    )


def install(settings: Settings, only: Sequence[str] | None = None, report: Report = print) -> None:
    """Fetch or build what the services need, reusing the cache outside the checkout."""
    _install(select(settings, only), report)


def _install(services: list[Service], report: Report) -> None:
    for service in services:
        report(f"{service.name}: checking installation")
        service.install()


def up(
    settings: Settings, only: Sequence[str] | None = None, report: Report = print
) -> list[ServiceStatus]:
    """Install what is missing, start what is not running, wait until every service is healthy.

    Without names, the infrastructure only: the pipeline components need a champion. Idempotent:
    services already started by the stack are left alone; what is left of a run whose supervisor
    died (an orphaned child holding the port) is stopped first.
    """
    services = select(settings, only or INFRASTRUCTURE)
    to_start = [service for service in services if running(service) is None]
    for service in services:
        if service in to_start:
            _reclaim_orphans(service, report)
            _check_ports_free(service)
        else:
            report(f"{service.name}: already running")
    _install(to_start, report)
    for service in to_start:
        service.prepare()
        record = process.spawn(service.argv(), service.log_path, service.env())
        record.save(service.pid_path)
        report(f"{service.name}: started, pid {record.pid}")
    _wait_healthy(services, settings.health_timeout_s, report)
    for service in services:
        service.configure()
    return status(settings, only)


def _reclaim_orphans(service: Service, report: Report) -> None:
    record = process.PidRecord.load(service.pid_path)
    left = process.orphans(record) if record is not None else []
    if record is not None and left:
        report(f"{service.name}: stopping {len(left)} orphaned process(es) of its last run: {left}")
        process.stop(record)


def _check_ports_free(service: Service) -> None:
    taken = service.listening()
    if taken:
        port = taken[0]
        owner = port_owner(port)
        who = owner.describe() if owner else "another process"
        raise StackError(
            f"{service.name}: port {port} is already taken by {who}; stop it or set "
            f"another port with the ICECUBE_ environment variables (see `--help`)"
        )


def _wait_healthy(services: list[Service], timeout_s: float, report: Report) -> None:
    waiting = list(services)
    deadline = time.monotonic() + timeout_s
    while waiting:
        for service in list(waiting):
            record = running(service)
            if record is None:
                raise StackError(
                    f"{service.name} exited during start-up; last lines of {service.log_path}:\n"
                    + process.tail(service.log_path)
                )
            if service.healthy():
                report(f"{service.name}: healthy at {service.endpoint}")
                waiting.remove(service)
        if waiting and time.monotonic() > deadline:
            service = waiting[0]
            raise StackError(
                f"{service.name} not healthy after {timeout_s:.0f} s; "
                f"last lines of {service.log_path}:\n" + process.tail(service.log_path)
            )
        if waiting:
            time.sleep(0.5)


def down(settings: Settings, only: Sequence[str] | None = None, report: Report = print) -> None:
    """Stop exactly the processes this stack started (by pid file and run tag), every service
    unless named, in reverse start order."""
    for service in reversed(select(settings, only)):
        record = process.PidRecord.load(service.pid_path)
        left = [] if record is None else process.tagged(record.run_tag)
        if record is None or not (process.is_alive(record) or left):
            report(f"{service.name}: not running")
        else:
            what = f"pid {record.pid}" if process.is_alive(record) else f"orphans {left}"
            process.stop(record)
            report(f"{service.name}: stopped {what}")
        service.pid_path.unlink(missing_ok=True)
