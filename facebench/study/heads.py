"""The heads the study compares, their fixed parameters and the tuning grid they all share.

Every head gets the same tuning budget: :data:`GRID_SIZE` configurations. Linear heads have one
knob, the learning rate (:data:`LINEAR_LRS`); heads with a scale γ (normalized) have two, learning
rate × γ (:data:`NORMALIZED_LRS` × :data:`NORMALIZED_SCALES`). Margins, λ and bias initialisation
stay at the paper's values (fixed in :data:`DEFAULT_HEADS` or the head's defaults).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from facebench.errors import ConfigError

LINEAR_LRS = (0.2, 0.1, 0.05, 0.025)
NORMALIZED_LRS = (0.025, 0.0125)
NORMALIZED_SCALES = (16.0, 32.0)
GRID_SIZE = 4


@dataclass(frozen=True)
class StudyHead:
    """A row of the table: label, short key (run names), registered head and fixed params."""

    label: str
    key: str
    head: str
    params: dict = field(default_factory=dict, hash=False)
    tasks: tuple[str, ...] = ("closed", "open")  # what its table runs train and measure

    def has_scale(self) -> bool:
        """Whether the head scales cosines by γ (and γ is tuned)."""
        from facebench.heads import build_head

        return bool(build_head(self.head, 4, 3, **self.params).normalized)

    def grid(self) -> list[dict]:
        """The tuning configurations: ``{"lr": ..., "scale": ... or None}``, in grid order."""
        if self.has_scale():
            pairs = itertools.product(NORMALIZED_LRS, NORMALIZED_SCALES)
            return [{"lr": lr, "scale": scale} for lr, scale in pairs]
        return [{"lr": lr, "scale": None} for lr in LINEAR_LRS]

    def overrides(self, lr: float, scale: float | None) -> list[str]:
        """Recipe overrides that select this head with ``lr`` and ``scale``."""
        items = [f"head.name={self.head}", f"optim.lr={lr}"]
        items += [f"head.params.{k}={v}" for k, v in self.params.items()]
        if scale is not None:
            items.append(f"head.params.scale={float(scale)}")
        return items


DEFAULT_HEADS = (
    StudyHead("L_soft", "softmax", "softmax", {"normalized": False}),
    StudyHead("L_bce-u", "bce_u", "bce_u", {"normalized": False}),
    StudyHead("L_bce-d", "bce_d", "bce_d", {"normalized": False}),
    StudyHead("L_soft-nu", "normsoftmax", "normsoftmax"),
    StudyHead("L_bce-nu", "bce_u_norm", "bce_u", {"normalized": True}),
    StudyHead("CosFace (L_soft-nu, m=0.4)", "cosface", "cosface", {"margin": 0.4}),
    StudyHead("L_bce-nu, m=0.4", "bce_u_margin", "bce_u", {"normalized": True, "margin": 0.4}),
    # the other unified-bias binary loss, at its paper's defaults (r tuned like γ, m 0.4, λ 0.7):
    # compared with L_bce-nu on the closed set (learned threshold, uniform accuracy) only
    StudyHead("SphereFace2", "sphereface2", "sphereface2", tasks=("closed",)),
)

#: Heads a study may name beside :data:`DEFAULT_HEADS` (in ``--heads`` and the face preset).
EXTRA_HEADS = (StudyHead("ArcFace (L_soft-nu, m=0.5)", "arcface", "arcface", {"margin": 0.5}),)
#: The face study's heads (UniFace's ablation and SphereFace2; no per-class-bias L_bce-d).
FACE_HEADS = (
    "softmax",
    "bce_u",
    "normsoftmax",
    "bce_u_norm",
    "cosface",
    "bce_u_margin",
    "arcface",
    "sphereface2",
)

#: The paper's comparisons: (claimed-better head key, the SoftMax-family head it is set against).
COMPARISONS = (
    ("bce_u", "softmax"),
    ("bce_d", "softmax"),
    ("bce_u_norm", "normsoftmax"),
    ("bce_u_margin", "cosface"),
    # no claim of the paper: "held" reads "L_bce-nu higher", "reversed" "SphereFace2 higher"
    ("bce_u_norm", "sphereface2"),
    # SphereFace2 has a margin: also against the margin variant ("held": L_bce-nu, m=0.4 higher)
    ("bce_u_margin", "sphereface2"),
)

#: The γ sweep of the paper's figure 1: the normalized SoftMax and unified-bias BCE.
SWEEP_HEADS = ("normsoftmax", "bce_u_norm")
SWEEP_SCALES = (16.0, 32.0, 64.0)


def select_heads(names: str | None) -> tuple[StudyHead, ...]:
    """``--heads``: comma-separated study keys or registered head names (default: all of
    :data:`DEFAULT_HEADS`). A registered head outside the defaults runs with its own defaults."""
    from facebench.heads import HEADS

    if names is None:
        return DEFAULT_HEADS
    known = {h.key: h for h in (*DEFAULT_HEADS, *EXTRA_HEADS)}
    chosen = []
    for name in (n.strip() for n in names.split(",")):
        if name in known:
            chosen.append(known[name])
        elif name in HEADS:
            chosen.append(StudyHead(name, name, name))
        else:
            raise ConfigError(
                f"--heads: unknown head {name!r}; study keys: {', '.join(known)}; "
                f"registered heads: {', '.join(HEADS)}"
            )
    if len({h.key for h in chosen}) != len(chosen) or not chosen:
        raise ConfigError(f"--heads {names!r}: give each head once, at least one")
    return tuple(chosen)
