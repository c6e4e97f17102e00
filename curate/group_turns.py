"""A duplicate group's turns: the turn between any two members, and whom each decision tests.

The dups stage gives each member `dup_angle` (composed along the group's verified pairs): the turn
that brings it onto the representative after un-mirroring, so the turn between any two members is
known. `Group` holds that geometry for one group, its anchor (the member whose orientation is
wanted) and the members the anchor is tested against: the clusters at an odd angle to it and
their witnesses, the candidates for the upright member it was turned from, and the members it
may have been saved again from by a lossless turn or mirror.
"""

from __future__ import annotations

import numpy as np

from curate.resave import lossless
from curate.skew import MIN_SKEW

# Why each value is what it is, and the figures behind it: docs/orient-constants.md.
MIN_CONFIDENCE = 0.5  # a verified pair is at least this sure of its turn (the dups stage aligned the two)
GROUP_SNAP = MIN_SKEW  # degrees: a group turn closer than this to a right angle is that right angle
AGREE = 3.0  # degrees: votes within this of each other agree
WITNESSES = 3  # distinct members of a cluster (one odd angle to the anchor) whose wedges are tested
UPRIGHT_CANDIDATES = 6  # members tested as the upright one the anchor was turned from: 3 left a chain's original out
RESAVE_CANDIDATES = 3  # members at a right angle or mirrored the anchor is tested as saved from
UPRIGHT_SCORE = 0.8  # a candidate is verified against the anchor this well (a re-toned, turned, zoomed copy: 0.80-0.85)


def norm_angle(deg: float) -> float:
    """Into (-180, 180], rounded to 0.01; near-multiples of 90 snapped to them."""
    deg = (float(deg) + 180.0) % 360.0 - 180.0
    if deg == -180.0:
        deg = 180.0
    nearest = round(deg / 90.0) * 90.0
    if abs(deg - nearest) < 0.5:
        deg = nearest
    return 0.0 if abs(deg) < 1e-9 else round(deg, 2)


def group_confidence(dup_score: float) -> float:
    """Confidence of a turn taken from a verified duplicate pair. The dups stage accepted the
    pair only after aligning the two images (its angles are within 2 degrees), so a verified
    pair is at least MIN_CONFIDENCE sure; a closer match (dup_score, 0-1) is surer."""
    return round(min(1.0, MIN_CONFIDENCE + 0.5 * max(0.0, float(dup_score))), 3)


def odd_part(turn: float) -> float:
    """The part of a turn beyond the nearest right angle, in [-45, 45]."""
    return float(turn) - 90.0 * round(float(turn) / 90.0)


class Group:
    """One duplicate group's geometry (from the dups stage), its anchor (the member whose
    orientation is wanted: the representative when wanted, else the first wanted one) and the
    anchor's odd-angle relations to the other members.

    resampled[x]: the dups stage found x resampled against the group's least-marked member
    (its `derived` marks): made from another member. A cluster whose every tested member is
    so marked, while the anchor is not, cannot hold the upright member the anchor was turned
    from (on Kaggle-style chains such clusters are copies turned further)."""

    def __init__(self, members: list[int], anchor: int, angle, mirrored, score, exif, rep,
                 sha=None, resampled=None, plain=None, unmarked=None):
        self.members, self.anchor = members, anchor
        self.angle, self.mirrored, self.score, self.rep = angle, mirrored, score, rep
        self.resampled = resampled if resampled is not None else np.zeros(len(angle), bool)
        # members that may be the upright one the anchor was turned from (see onto_upright):
        # plain (the dups stage found no resampling or fill; a tone change does not turn), no
        # EXIF turn, one picture with the anchor, at an odd angle to it; the representative first.
        # unmarked: not even re-toned (the cut test asks that)
        self.candidates: list[int] = []
        self.unmarked = unmarked if unmarked is not None else np.zeros(len(angle), bool)
        if plain is not None:
            for x in sorted((x for x in members if x != anchor and plain[x] and not exif[x]
                             and score[x] >= UPRIGHT_SCORE and abs(odd_part(self.turn(anchor, x))) >= GROUP_SNAP),
                            key=lambda x: (not rep[x], -score[x], x)):
                if len(self.candidates) < UPRIGHT_CANDIDATES and (
                        sha is None or not sha[x] or all(sha[x] != sha[y] for y in self.candidates)):
                    self.candidates.append(x)
        # members at the anchor's own pose, as plain: a candidate turned from one of them was turned
        # from where the anchor stands (see chain_starts)
        self.mates: list[int] = []
        if plain is not None:
            for x in sorted((x for x in members if x != anchor and plain[x] and not exif[x] and score[x] >= UPRIGHT_SCORE
                             and abs(self.turn(anchor, x)) < GROUP_SNAP), key=lambda x: (not rep[x], -score[x], x)):
                if len(self.mates) < WITNESSES and not (sha is not None and sha[x] and any(sha[x] == sha[y] for y in self.mates + [anchor])):
                    self.mates.append(x)
        # members the anchor may have been saved from by a lossless turn or mirror (see resaved_from)
        self.lossless: list[tuple[int, bool, int]] = []
        for x in sorted((x for x in members if x != anchor and not (sha is not None and sha[x] and sha[x] == sha[anchor])),
                        key=lambda x: (-score[x], x)):
            pose = self.pose(x, anchor)
            if pose is not None and len(self.lossless) < RESAVE_CANDIDATES and (
                    sha is None or not sha[x] or all(sha[x] != sha[y] for y, _, _ in self.lossless)):
                self.lossless.append((x, *pose))
        # the clusters of members at an odd angle to the anchor: (anchor's turn onto them, witness)
        self.clusters: list[tuple[float, int]] = []
        # up to WITNESSES distinct members of each cluster, the witness first: any of them whose
        # wedges show its turn shows the anchor straight (one copy's wedges can be faint)
        self.seen: dict[int, list[int]] = {}
        for x in sorted((x for x in members if x != anchor), key=lambda x: (bool(exif[x]), -score[x], x)):
            o = odd_part(self.turn(anchor, x))
            if abs(o) < GROUP_SNAP:
                continue
            c = next((w for c, w in self.clusters if angle_diff(o, c) <= AGREE), None)
            if c is None:
                self.clusters.append((o, x))  # the witness: no EXIF turn, the best-verified copy
                self.seen[x] = [x]
            elif len(self.seen[c]) < WITNESSES and not exif[x] and (
                    sha is None or not sha[x] or all(sha[x] != sha[y] for y in self.seen[c])):
                self.seen[c].append(x)

    def turn(self, x: int, y: int) -> float:
        """The turn (CCW) that stands x upright if y stands upright: with rotate(mirror^m(x), a_x)
        == representative, x onto y is a_x - a_y, its sign flipped when x is mirrored."""
        d = self.angle[x] - self.angle[y]
        return norm_angle(-d if self.mirrored[x] else d)

    def pose(self, x: int, y: int) -> tuple[bool, int] | None:
        """(mirror, quarter turns CCW) that make y of x exactly (curate.resave.pose), or None when
        the two are not one frame turned by a right angle or mirrored (or the very same pose)."""
        d = self.angle[x] - self.angle[y]
        return lossless(self.mirrored[x] != self.mirrored[y], -d if self.mirrored[y] else d)

    def tests(self) -> dict[int, list[float]]:
        """The wedge fits that decide the anchor's odd angle: the anchor at each cluster's turn,
        each witness at the turn onto the anchor (angles as _score's hypotheses: minus the turn)."""
        need: dict[int, list[float]] = {}
        for o, w in self.clusters:
            need.setdefault(self.anchor, []).append(round(-o, 2))
            for x in self.seen[w]:
                need.setdefault(x, []).append(self.test_angle(x))
        return need

    def test_angle(self, x: int) -> float:
        """The angle x's wedges are tested at: its own turn onto the anchor."""
        return round(-odd_part(self.turn(x, self.anchor)), 2)


def angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)
