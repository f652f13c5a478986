"""The model server's answers (docs/model-api.md), one type for both ends.

A request is a pulse frame of whole events (wire/frame.py). The answer is a `PredictionBatch`:
columnar, one entry per served event in request order, plus the events refused by name. The
server builds it and sends `as_json()`; the worker reads it back with `from_json`, which checks
that it accounts for exactly the events asked about. A request of another detector is refused
whole with a typed `GeometryRejection` (status 409). Columnar lists keep the encoder's work to a
few `tolist()` calls and turn straight back into numpy arrays.

`track_probability` came later: a model without a classifier has NaN there, sent as JSON null
(strict JSON has no NaN, and the server's encoder refuses it), and an answer of an older server
without the key reads as all NaN. A NaN probability is "not known", never a reason to refuse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.wire.reasons import Reason
from icecube_stream.wire.validation import Problem

#: The status of a typed refusal: the request is well formed, but this model must not serve it.
REJECTION_STATUS = 409


class AnswerMismatchError(ValueError):
    """The answer does not account for exactly the events asked about: a server bug."""


def _unknown() -> NDArray[np.float64]:
    """Placeholder default: filled with one NaN per event in __post_init__."""
    return np.zeros(0)


@dataclass(frozen=True)
class PredictionBatch:
    model_name: str
    model_version: str
    event_id: NDArray[np.int64]
    azimuth: NDArray[np.float64]
    zenith: NDArray[np.float64]
    direction: NDArray[np.float64]  # (n, 3) unit vectors, source direction
    angular_uncertainty: NDArray[np.float64]  # radians
    refused: tuple[Problem, ...] = ()  # events refused by name, with the reason
    #: P(track-like) per event; NaN where the model has no classifier (the default: all NaN).
    track_probability: NDArray[np.float64] = field(default_factory=_unknown)

    def __post_init__(self) -> None:
        n = self.event_id.size
        if self.track_probability.size == 0 and n:
            object.__setattr__(self, "track_probability", np.full(n, np.nan))
        columns = (self.azimuth, self.zenith, self.angular_uncertainty, self.track_probability)
        if self.direction.shape != (n, 3) or any(c.shape != (n,) for c in columns):
            raise ValueError(f"{self.direction.shape[0]} directions for {n} events")

    @classmethod
    def refusing(
        cls, model_name: str, model_version: str, refused: Sequence[Problem]
    ) -> PredictionBatch:
        """An answer that serves none of the events."""
        nothing = np.zeros(0)
        return cls(
            model_name, model_version, np.zeros(0, np.int64), nothing, nothing,
            np.zeros((0, 3)), nothing, tuple(refused),
        )  # fmt: skip

    @property
    def n_events(self) -> int:
        return int(self.event_id.size)

    def finite_only(self) -> PredictionBatch:
        """Events whose direction and uncertainty are finite; the others refused by name. The
        track probability is not checked: NaN there means the model has no classifier."""
        finite = np.isfinite(self.direction).all(axis=1) & np.isfinite(self.angular_uncertainty)
        if finite.all():
            return self
        refused = tuple(
            Problem(
                -1, e, Reason.NON_FINITE_OUTPUT, f"the model's output for event {e} is not finite"
            )
            for e in self.event_id[~finite].tolist()
        )
        return replace(
            self,
            event_id=self.event_id[finite],
            azimuth=self.azimuth[finite],
            zenith=self.zenith[finite],
            direction=self.direction[finite],
            angular_uncertainty=self.angular_uncertainty[finite],
            refused=self.refused + refused,
            track_probability=self.track_probability[finite],
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "event_id": self.event_id.tolist(),
            "azimuth": self.azimuth.tolist(),
            "zenith": self.zenith.tolist(),
            "x": self.direction[:, 0].tolist(),
            "y": self.direction[:, 1].tolist(),
            "z": self.direction[:, 2].tolist(),
            "angular_uncertainty": self.angular_uncertainty.tolist(),
            "track_probability": _nullable(self.track_probability),
            "rejected": [
                {"event_id": p.event_id, "reason": p.reason, "detail": p.detail}
                for p in self.refused
            ],
        }

    @classmethod
    def from_json(cls, body: dict[str, Any], expected_ids: NDArray[np.int64]) -> PredictionBatch:
        """The answer to a request of `expected_ids`; AnswerMismatchError unless its served and
        refused events are exactly those, with finite directions. KeyError, TypeError or
        ValueError when it is not an answer at all."""
        refused = tuple(
            Problem(-1, int(r["event_id"]), str(r["reason"]), str(r.get("detail", "")))
            for r in body.get("rejected", [])
        )
        answer = cls(
            model_name=str(body["model_name"]),
            model_version=str(body["model_version"]),
            event_id=np.asarray(body["event_id"], np.int64),
            azimuth=np.asarray(body["azimuth"], np.float64),
            zenith=np.asarray(body["zenith"], np.float64),
            direction=np.stack([np.asarray(body[c], np.float64) for c in "xyz"], axis=1).reshape(
                -1, 3
            ),
            angular_uncertainty=np.asarray(body["angular_uncertainty"], np.float64),
            refused=refused,
            track_probability=_probabilities(body, len(body["event_id"])),
        )
        answered = np.sort(np.concatenate([answer.event_id, [r.event_id for r in refused]]))
        if (
            not np.array_equal(answered, np.sort(expected_ids))
            or not np.isfinite(answer.direction).all()
        ):
            raise AnswerMismatchError("the model server's answer does not match the events sent")
        return answer


def _nullable(values: NDArray[np.float64]) -> list[float | None]:
    """A column as a JSON list with null for NaN."""
    listed: list[float | None] = values.tolist()
    if np.isnan(values).any():
        listed = [None if math.isnan(v) else v for v in listed]  # type: ignore[arg-type]
    return listed


def _probabilities(body: dict[str, Any], n: int) -> NDArray[np.float64]:
    """The answer's track probabilities, null as NaN; all NaN when an older server sent none."""
    if "track_probability" not in body:
        return np.full(n, np.nan)
    return np.array(
        [np.nan if v is None else v for v in body["track_probability"]], dtype=np.float64
    )


@dataclass(frozen=True)
class GeometryRejection:
    """A whole request refused: its frame comes from another detector than the served model's."""

    frame_geometry: str
    model_geometry: str

    def as_json(self) -> dict[str, str]:
        return {
            "reason": Reason.GEOMETRY_MISMATCH,
            "frame_geometry": self.frame_geometry,
            "model_geometry": self.model_geometry,
        }

    @classmethod
    def from_json(cls, body: Any) -> GeometryRejection | None:
        """The typed refusal an error body carries, or None when it is not one."""
        rejection = body.get("rejection") if isinstance(body, dict) else None
        if not isinstance(rejection, dict) or rejection.get("reason") != Reason.GEOMETRY_MISMATCH:
            return None
        return cls(str(rejection.get("frame_geometry")), str(rejection.get("model_geometry")))
