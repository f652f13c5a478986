"""Network namespaces for a Kafka cluster whose nodes can be cut off (`stack up --netns`).

Node n runs in namespace `icecube-<tag>-kafka-n` with address <subnet>.n on a veth pair whose
outer end hangs on one bridge; this machine reaches the bridge at <subnet>.254. The tag is the
subnet's last number, so two clusters on two subnets (a test's and yours) never share a name.
Taking a node's outer end down cuts it off from the other nodes and from every client at once,
and bringing it up heals the partition: traffic never leaves this machine. Needs root (`ip netns`).
"""

from __future__ import annotations

import subprocess

from icecube_stream.config import Settings
from icecube_stream.stack.service import StackError

HOST_SUFFIX = 254


def _tag(settings: Settings) -> str:
    return settings.kafka_netns_subnet.rsplit(".", 1)[-1]


def namespace(settings: Settings, node: int) -> str:
    return f"icecube-{_tag(settings)}-kafka-{node}"


def bridge(settings: Settings) -> str:
    return f"icb{_tag(settings)}"


def link(settings: Settings, node: int) -> str:
    """The outer end of node's veth pair (interface names stop at 15 characters)."""
    return f"icb{_tag(settings)}k{node}"


def ensure(settings: Settings) -> None:
    """The bridge and every node's namespace, address and links; idempotent."""
    subnet, hub = settings.kafka_netns_subnet, bridge(settings)
    if not _exists(["ip", "link", "show", hub]):
        _ip("link", "add", hub, "type", "bridge")
        _ip("addr", "add", f"{subnet}.{HOST_SUFFIX}/24", "dev", hub)
    _ip("link", "set", hub, "up")
    for node in range(1, settings.kafka_brokers + 1):
        ns, outer = namespace(settings, node), link(settings, node)
        if not _exists(["ip", "netns", "exec", ns, "true"]):
            _ip("netns", "add", ns)
        if not _exists(["ip", "link", "show", outer]):
            _ip("link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", ns, "addr", "add", f"{subnet}.{node}/24", "dev", "eth0")
        _ip("link", "set", outer, "master", hub, "up")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")


def exists(settings: Settings, node: int) -> bool:
    return _exists(["ip", "link", "show", link(settings, node)])


def cut(settings: Settings, node: int) -> None:
    _ip("link", "set", link(settings, node), "down")


def heal(settings: Settings, node: int) -> None:
    _ip("link", "set", link(settings, node), "up")


def remove(settings: Settings) -> None:
    """Every namespace and link `ensure` made (the nodes must be stopped first)."""
    for node in range(1, settings.kafka_brokers + 1):
        if _exists(["ip", "link", "show", link(settings, node)]):
            _ip("link", "del", link(settings, node))
        if _exists(["ip", "netns", "exec", namespace(settings, node), "true"]):
            _ip("netns", "del", namespace(settings, node))
    if _exists(["ip", "link", "show", bridge(settings)]):
        _ip("link", "del", bridge(settings))


def _exists(argv: list[str]) -> bool:
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(
            f"`ip {' '.join(args)}` failed: {result.stderr.strip()} (network namespaces need root "
            "and iproute2)"
        )
