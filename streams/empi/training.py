"""Estimating the model from the records themselves (``hutong empi train``, the bench).

:func:`train` draws random pairs for ``u`` and, for ``m``, runs EM within each
training blocking rule on the comparisons that rule did not block on, the way
Splink trains; then it estimates ``u`` again with the few matches among the
random pairs weighed out (:func:`streams.empi.model.discount_matches`). The
prior is not trained here: the linker derives it from the size of the index
(see :class:`streams.empi.linker.MasterIndex`).
Deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from streams.empi.blocking import blocking_keys
from streams.empi.compare import COMPARISONS, Vector, compare
from streams.empi.model import (
    DEFAULT_MODEL,
    Model,
    discount_matches,
    estimate_m,
    estimate_u,
)
from streams.empi.person import Person

__all__ = ["TRAINING_RULES", "Training", "train"]


@dataclass(frozen=True, slots=True)
class Training:
    model: Model
    random_pairs: int
    candidate_pairs: int


#: Training blocking rules, as Splink trains: each blocks on some fields and EM
#: estimates m only for the comparisons it did not block on (within a block those
#: agree by construction, for matches and non-matches alike).
TRAINING_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("id", ("id_card",)),
    ("ix", ("identifier",)),
    ("ph", ("phone",)),
    ("nb", ("name", "birth_date")),
)


def _rule_pairs(keys: Sequence[list[str]], prefix: str, max_block: int,
                limit: int) -> list[tuple[int, int]]:
    blocks: dict[str, list[int]] = defaultdict(list)
    for i, record_keys in enumerate(keys):
        for key in record_keys:
            if key.startswith(prefix + ":"):
                blocks[key].append(i)
    pairs: list[tuple[int, int]] = []
    for members in blocks.values():
        if len(members) <= max_block:
            pairs += [(i, j) for x, i in enumerate(members) for j in members[x + 1:]]
        if len(pairs) >= limit:
            break
    return pairs[:limit]


def train(records: Sequence[Person], base: Model = DEFAULT_MODEL, *,
          random_pairs: int = 200_000, seed: int = 20261122, max_block: int = 200,
          limit: int = 200_000) -> Training:
    """u from random pairs; m by EM within each training rule, for the comparisons the
    rule does not block on, averaged over the rules that estimated it."""
    rng = random.Random(seed)  # noqa: S311 - sampling, not secrets
    count = len(records)
    if count < 2:
        return Training(base, 0, 0)
    sampled: list[Vector] = []
    draw = rng.random
    for _ in range(random_pairs):
        i, j = int(draw() * count), int(draw() * count)
        if i != j:
            sampled.append(compare(records[i], records[j]))
    model = estimate_u(sampled, base)
    names = [c.name for c in COMPARISONS]
    estimates: list[list[tuple[float, ...]]] = [[] for _ in COMPARISONS]
    used = 0
    keys = [blocking_keys(record) for record in records]
    for prefix, blocked in TRAINING_RULES:
        pairs = _rule_pairs(keys, prefix, max_block, limit)
        if len(pairs) < 50:
            continue
        used += len(pairs)
        masked = [tuple(None if names[k] in blocked else level
                        for k, level in enumerate(compare(records[i], records[j])))
                  for i, j in pairs]
        fitted = estimate_m(masked, replace(model, prior=0.5))
        for k, name in enumerate(names):
            if name not in blocked:
                estimates[k].append(fitted.m[k])
    m = tuple(_mean(found) if found else model.m[k] for k, found in enumerate(estimates))
    return Training(discount_matches(sampled, replace(model, m=m)), len(sampled), used)


def _mean(levels: list[tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(sum(column) / len(levels) for column in zip(*levels, strict=True))
