"""The direction network: a per-pulse encoder, a little attention, pooling, a vMF head.

Why this shape (see docs/model.md for the measurements): the model must run at >= 8,000
events/s on 2 CPU threads, i.e. about 250 us of CPU per event, which rules out deep
transformers over hundreds of pulses. Events are sets of pulses, so the body is
permutation-invariant: every pulse (with its event's summary features broadcast to it) goes
through a small MLP. Pulses then see each other through `n_context` context blocks: the set is
pooled (mean and max), the pooled vector is broadcast back and each pulse is updated by an MLP
of itself and the event context. That costs O(pulses) where self-attention costs O(pulses^2);
`n_attention` real self-attention blocks can be added for a slower, richer model (measured in
docs/model.md). Masked mean / max / attention pooling turn the set into one vector. The head sees
that vector plus the event summaries (robust LineFit among them) and outputs a direction, a
von Mises-Fisher concentration kappa and, with `classifier`, a track-vs-cascade logit: one more
output of the same head costs nothing measurable, and the topology tells a consumer whether
the event is the kind worth an alert (and lets the kappa calibration treat the two apart).
With `starting`, a sixth output says whether the event is a starting track: its errors have a
heavier tail than either other type at the same kappa, so the calibration needs to know.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional

from icecube_stream.model.features import EVENT_FEATURES, PULSE_FEATURES

LINEFIT_SLICE = slice(EVENT_FEATURES.index("linefit_x"), EVENT_FEATURES.index("linefit_z") + 1)
DIPOLE_SLICE = slice(EVENT_FEATURES.index("dipole_x"), EVENT_FEATURES.index("dipole_z") + 1)
ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU}
#: kappa is kept above this so the loss stays finite for hopeless events (sigma ~ 3 rad).
KAPPA_MIN = 0.1


@dataclass(frozen=True)
class NetworkConfig:
    d_model: int = 64
    n_context: int = 1
    n_attention: int = 0
    n_heads: int = 4
    ff_dim: int = 128
    #: relu is ~20 % cheaper than gelu on CPU (gelu's erf is a noticeable share of a forward).
    activation: str = "gelu"
    n_pulse_features: int = len(PULSE_FEATURES)
    n_event_features: int = len(EVENT_FEATURES)
    #: A fifth head output, the track-vs-cascade logit. Models saved before it existed have a
    #: 4-output head; they load with classifier=False (inference.py) and predict NaN.
    classifier: bool = True
    #: A sixth output, the starting-track logit. Models saved before it load with starting=False
    #: and predict NaN.
    starting: bool = True

    def as_dict(self) -> dict[str, int | str | bool]:
        return asdict(self)


class NetOutput(NamedTuple):
    direction: Tensor  # (n, 3) unit vectors
    kappa: Tensor  # (n,) vMF concentration, > KAPPA_MIN
    track_logit: Tensor  # (n,) log-odds of a track-like event; NaN without a classifier
    starting_logit: Tensor  # (n,) log-odds of a starting track; NaN without that output


class DirectionNet(nn.Module):
    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        act = ACTIVATIONS[config.activation]
        self.encoder = nn.Sequential(
            nn.Linear(config.n_pulse_features + config.n_event_features, d),
            act(),
            nn.Linear(d, d),
        )
        self.context = nn.ModuleList(_ContextBlock(d, act) for _ in range(config.n_context))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d,
                config.n_heads,
                config.ff_dim,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(config.n_attention)
        )
        self.score = nn.Linear(d, 1)
        # The head predicts a correction to two first guesses among the event features (robust
        # LineFit and the charge dipole): the output starts out as LineFit's direction and
        # training only has to learn where, and how much, to trust either.
        self.prior_weight = nn.Parameter(torch.tensor(3.0))
        self.dipole_weight = nn.Parameter(torch.tensor(0.0))
        self.head = nn.Sequential(
            nn.Linear(3 * d + config.n_event_features, 2 * d),
            act(),
            nn.Linear(2 * d, d),
            act(),
            nn.Linear(d, 4 + config.classifier + config.starting),
        )

    def forward(self, pulses: Tensor, mask: Tensor, events: Tensor) -> NetOutput:
        """pulses (n, L, F), mask (n, L) True = real, events (n, G) -> direction, kappa, logit."""
        width = pulses.shape[1]
        context = events[:, None, :].expand(-1, width, -1)
        h = self.encoder(torch.cat([pulses, context], dim=-1))
        padding = ~mask
        real = mask[..., None].to(h.dtype)
        # Events at the pulse cap fill every slot, and nearly every event reaches it, so most
        # batches have no padding: masking them anyway cost about a tenth of the forward pass.
        masked = padding if bool(padding.any()) else None
        for context_block in self.context:
            h = context_block(h, real, masked)
        for block in self.blocks:
            h = block(h, src_key_padding_mask=padding)
        mean, maxed = _masked_mean_max(h, real, masked)
        scores = self.score(h).squeeze(-1)
        if masked is not None:
            scores = scores.masked_fill(masked, float("-inf"))
        attended = (torch.softmax(scores, dim=1)[..., None] * h).sum(dim=1)
        out = self.head(torch.cat([mean, maxed, attended, events], dim=-1))
        prior = (
            self.prior_weight * events[:, LINEFIT_SLICE]
            + self.dipole_weight * events[:, DIPOLE_SLICE]
        )
        direction = functional.normalize(out[:, :3] + prior, dim=-1, eps=1e-6)
        kappa = functional.softplus(out[:, 3]) + KAPPA_MIN
        missing = torch.full_like(kappa, float("nan"))
        track_logit = out[:, 4] if self.config.classifier else missing
        starting_logit = out[:, -1] if self.config.starting else missing
        return NetOutput(direction, kappa, track_logit, starting_logit)


def _masked_mean_max(h: Tensor, real: Tensor, padding: Tensor | None) -> tuple[Tensor, Tensor]:
    """Mean and max over the real pulses; `padding` None: every slot is real."""
    if padding is None:
        return h.mean(dim=1), h.amax(dim=1)
    mean = (h * real).sum(dim=1) / real.sum(dim=1).clamp_min(1.0)
    maxed = h.masked_fill(padding[..., None], float("-inf")).amax(dim=1)
    return mean, maxed


class _ContextBlock(nn.Module):
    """h <- h + MLP(h, pooled(h)): each pulse learns about the whole event in O(pulses)."""

    def __init__(self, d: int, act: type[nn.Module]) -> None:
        super().__init__()
        self.summary = nn.Linear(2 * d, d)
        self.update = nn.Sequential(act(), nn.Linear(d, d), act(), nn.Linear(d, d))
        self.local = nn.Linear(d, d, bias=False)

    def forward(self, h: Tensor, real: Tensor, padding: Tensor | None) -> Tensor:
        mean, maxed = _masked_mean_max(h, real, padding)
        summary = self.summary(torch.cat([mean, maxed], dim=-1))
        updated: Tensor = h + self.update(self.local(h) + summary[:, None, :])
        return updated
