"""Active alerts, as the running Prometheus evaluates them (its /api/v1/alerts).

Prometheus, not this code, owns the rules: the CLI only reports what is pending or firing, so
what an operator reads in a terminal is exactly what Alertmanager and Grafana see.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import httpx


class PrometheusUnavailableError(RuntimeError):
    pass


@dataclass(frozen=True)
class ActiveAlert:
    name: str
    state: str  # pending or firing
    severity: str
    component: str
    instance: str
    summary: str
    active_at: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _alert(raw: dict[str, Any]) -> ActiveAlert:
    labels: dict[str, str] = raw.get("labels", {})
    annotations: dict[str, str] = raw.get("annotations", {})
    return ActiveAlert(
        name=labels.get("alertname", "?"),
        state=str(raw.get("state", "?")),
        severity=labels.get("severity", ""),
        component=labels.get("component", ""),
        instance=labels.get("instance", ""),
        summary=annotations.get("summary", ""),
        active_at=str(raw.get("activeAt", "")),
    )


def active_alerts(prometheus_url: str, timeout_s: float = 5.0) -> list[ActiveAlert]:
    """Pending and firing alerts, firing first, then by severity and name."""
    try:
        response = httpx.get(f"{prometheus_url}/api/v1/alerts", timeout=timeout_s)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise PrometheusUnavailableError(
            f"Prometheus at {prometheus_url} did not answer: {error}"
        ) from error
    if body.get("status") != "success":
        raise PrometheusUnavailableError(f"Prometheus answered {body.get('error', body)}")
    alerts = [_alert(raw) for raw in body["data"]["alerts"]]
    rank = {"critical": 0, "warning": 1, "info": 2, "none": 3}
    return sorted(
        alerts,
        key=lambda a: (a.state != "firing", rank.get(a.severity, 4), a.name, a.instance),
    )
