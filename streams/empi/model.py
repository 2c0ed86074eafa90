"""The Fellegi-Sunter model: m and u per comparison level, match weights, EM.

For each comparison level, ``m`` is the chance that two records of one person
agree at that level and ``u`` the chance that two records of different people
do. A pair's match weight is ``log2(prior odds) + sum(log2(m/u))`` over the
comparisons both records have; its match probability is ``2^w / (1 + 2^w)``.

The parameters come from the data, as Splink estimates them:

* ``u`` from random pairs (:func:`estimate_u`): nearly all are non-matches, so
  how often they agree at each level is ``u``;
* ``m`` and the prior by expectation maximisation over the blocked candidate
  pairs (:func:`estimate_m`), with ``u`` held fixed, starting from the defaults;
* ``u`` again (:func:`discount_matches`), each random pair now counted by the
  chance it is a non-match: one random pair in a few thousand is a match, and
  for a rare agreement (the same insurance number, the same full name) those
  few outnumber the coincidences and would make ``u`` many times too large.

Configuration may override any level (``Model.with_overrides``). Every
probability is kept inside [1e-6, 1 - 1e-6] so that no single level can
become proof on its own.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from streams.empi.compare import COMPARISONS, Vector

__all__ = ["DEFAULT_MODEL", "Model", "discount_matches", "estimate_m", "estimate_u"]

_FLOOR = 1e-6

Levels = tuple[float, ...]


def _clamp(p: float) -> float:
    return min(max(p, _FLOOR), 1.0 - _FLOOR)


def _normalised(values: Sequence[float]) -> Levels:
    total = sum(values)
    if total <= 0:
        return tuple(1.0 / len(values) for _ in values)
    return tuple(_clamp(v / total) for v in values)


@dataclass(frozen=True)
class Model:
    """m and u per comparison (in :data:`COMPARISONS` order) and the prior match rate."""

    m: tuple[Levels, ...]
    u: tuple[Levels, ...]
    #: The share of candidate pairs that are matches, before looking at them.
    prior: float = 0.01
    _weights: tuple[tuple[float, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.m) != len(COMPARISONS) or len(self.u) != len(COMPARISONS):
            raise ValueError("one m and one u per comparison")
        for spec, m, u in zip(COMPARISONS, self.m, self.u, strict=True):
            if len(m) != len(spec.levels) or len(u) != len(spec.levels):
                raise ValueError(f"comparison {spec.name}: one m and u per level")
        weights = tuple(tuple(math.log2(_clamp(mi) / _clamp(ui)) for mi, ui in zip(m, u,
                                                                                  strict=True))
                        for m, u in zip(self.m, self.u, strict=True))
        object.__setattr__(self, "_weights", weights)

    @property
    def prior_weight(self) -> float:
        p = _clamp(self.prior)
        return math.log2(p / (1.0 - p))

    def level_weights(self, vector: Vector, term_u: Mapping[str, float] | None = None
                      ) -> dict[str, float]:
        """The weight each comparison adds (for the review queue's explanation).

        ``term_u`` gives, by comparison name, how often the agreed value itself
        occurs (term frequency): an exact match on a common name says less than on
        a rare one, so the larger of it and the level's ``u`` is used.
        """
        found: dict[str, float] = {}
        for i, (spec, level) in enumerate(zip(COMPARISONS, vector, strict=True)):
            if level is None:
                continue
            weight = self._weights[i][level]
            if term_u and spec.name in term_u and level == 0:
                u = max(_clamp(self.u[i][0]), _clamp(term_u[spec.name]))
                weight = math.log2(_clamp(self.m[i][0]) / u)
            found[spec.name] = weight
        return found

    def weight(self, vector: Vector, term_u: Mapping[str, float] | None = None) -> float:
        """The match weight of a comparison vector: log2 of the posterior odds."""
        return self.prior_weight + sum(self.level_weights(vector, term_u).values())

    def probability(self, vector: Vector, term_u: Mapping[str, float] | None = None) -> float:
        return probability(self.weight(vector, term_u))

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Mapping[str, float]]]
                       ) -> Model:
        """A copy with some levels set: ``{"name": {"exact": {"m": 0.9, "u": 0.001}}}``."""
        m, u = [list(levels) for levels in self.m], [list(levels) for levels in self.u]
        known = {spec.name: (i, spec) for i, spec in enumerate(COMPARISONS)}
        for name, levels in overrides.items():
            if name not in known:
                raise ValueError(f"no comparison named {name!r}; known: {sorted(known)}")
            i, spec = known[name]
            for level, values in levels.items():
                if level not in spec.levels:
                    raise ValueError(f"comparison {name} has no level {level!r}; "
                                     f"known: {list(spec.levels)}")
                j = spec.levels.index(level)
                m[i][j] = values.get("m", m[i][j])
                u[i][j] = values.get("u", u[i][j])
        return replace(self, m=tuple(tuple(x) for x in m), u=tuple(tuple(x) for x in u))

    def describe(self) -> dict[str, dict[str, dict[str, float]]]:
        """m, u and weight per level, by name (for ``hutong empi model`` and the docs)."""
        return {spec.name: {level: {"m": self.m[i][j], "u": self.u[i][j],
                                    "weight": round(self._weights[i][j], 3)}
                            for j, level in enumerate(spec.levels)}
                for i, spec in enumerate(COMPARISONS)}


def probability(weight: float) -> float:
    """Match probability of a match weight."""
    if weight > 60:
        return 1.0
    odds = math.pow(2.0, weight)
    return odds / (1.0 + odds)


#: Starting values, close to what EM finds on registry data; the data then decide.
DEFAULT_MODEL = Model(
    m=(
        (0.88, 0.05, 0.01, 0.04, 0.02),        # name
        (0.93, 0.05, 0.01, 0.01),              # birth_date
        (0.985, 0.015),                        # sex
        (0.65, 0.05, 0.30),                    # phone
        (0.45, 0.10, 0.05, 0.40),              # address: people move
        (0.90, 0.08, 0.02),                    # id_card (unchecked)
        (0.90, 0.07, 0.03),                    # identifier
        (0.25, 0.35, 0.10, 0.30),              # name_part (names "other")
    ),
    u=(
        (0.0005, 0.0015, 0.0001, 0.01, 0.988),  # name
        (0.0001, 0.0009, 0.012, 0.987),         # birth_date
        (0.5, 0.5),                             # sex
        (0.0005, 0.0005, 0.999),                # phone
        (0.001, 0.05, 0.2, 0.749),              # address (two Latin lines: grades of
                                                #   shared words, far rarer; train for them)
        (0.00001, 0.0001, 0.99989),             # id_card
        (0.0001, 0.001, 0.9989),                # identifier: numbers run in sequence
        (0.001, 0.02, 0.01, 0.969),             # name_part (names "other")
    ),
    prior=0.001,
)


def estimate_u(vectors: Iterable[Vector], model: Model = DEFAULT_MODEL,
               smoothing: float = 1.0) -> Model:
    """u from the comparison vectors of random pairs (almost all non-matches)."""
    counts = [[smoothing] * len(spec.levels) for spec in COMPARISONS]
    for vector, seen in Counter(vectors).items():
        for i, level in enumerate(vector):
            if level is not None:
                counts[i][level] += seen
    return replace(model, u=tuple(_normalised(c) for c in counts))


def discount_matches(vectors: Sequence[Vector], model: Model, *, iterations: int = 10,
                     smoothing: float = 1.0) -> Model:
    """``u`` from random pairs, each counted by its chance of being a non-match.

    EM with ``m`` held fixed: the share of matches among the random pairs and
    ``u`` are estimated together; ``model.prior`` is not changed (the share of
    matches among random pairs is not the linker's prior).
    """
    if not vectors:
        return model
    patterns = Counter(vectors)
    current, share = model, 1.0 / len(vectors)
    for _ in range(iterations):
        odds = share / (1.0 - share)
        counts = [[smoothing] * len(spec.levels) for spec in COMPARISONS]
        matched = 0.0
        for vector, seen in patterns.items():
            p = probability(math.log2(odds) + sum(current.level_weights(vector).values()))
            matched += p * seen
            for i, level in enumerate(vector):
                if level is not None:
                    counts[i][level] += (1.0 - p) * seen
        current = replace(current, u=tuple(_normalised(c) for c in counts))
        share = _clamp(matched / len(vectors))
    return current


def estimate_m(vectors: Sequence[Vector], model: Model = DEFAULT_MODEL, *,
               iterations: int = 25, tolerance: float = 1e-5,
               smoothing: float = 0.1) -> Model:
    """m and the prior by EM over candidate pairs' vectors, ``u`` held fixed.

    Stops after ``iterations`` or when no parameter moves more than ``tolerance``.
    """
    current = model
    if not vectors:
        return current
    patterns = Counter(vectors)  # a few hundred distinct vectors among many pairs
    for _ in range(iterations):
        counts = [[smoothing] * len(spec.levels) for spec in COMPARISONS]
        total = 0.0
        for vector, seen in patterns.items():
            p = current.probability(vector)
            total += p * seen
            for i, level in enumerate(vector):
                if level is not None:
                    counts[i][level] += p * seen
        updated = replace(current, m=tuple(_normalised(c) for c in counts),
                          prior=_clamp(total / len(vectors)))
        moved = max(abs(a - b) for old, new in zip(current.m, updated.m, strict=True)
                    for a, b in zip(old, new, strict=True))
        current = updated
        if moved < tolerance:
            break
    return current
