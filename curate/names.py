"""What file names say about where a file came from: a hint for dedup, never evidence.

Augmentation scripts and copying name a file after the one it was made from: the second output
made from `82-rotated1.jpg` is `82-rotated1-rotated2.jpg`, a copy of it `82-rotated1 - Copy.jpg`
or `82-rotated1 (1).jpg`. `chain` reads such a name back as (root, steps...): ("82", "rotated1",
"rotated2"); `kinship` is how far two chains sit apart in the family tree they spell (1: parent
and child, 2: siblings or grandparent). Names that carry no such marks (FracAtlas's `IMG0000630`,
random hex names) are a chain of one, their root alone.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from pathlib import PurePath

# Windows' (" - Copy", " - Copy (2)") and browsers' (" (1)") names for a second copy, repeated
_COPY_MARKS = re.compile(r"(?:\s*-\s*copy(?:\s*\(\d+\))?|\s*\(\d+\))+$", re.IGNORECASE)
# one step of a chain: a word and an optional number after a separator ("-rotated2", "_flip")
_STEP = re.compile(r"[-_ ]([A-Za-z]+\d*)$")


@functools.lru_cache(maxsize=1 << 17)  # dups reads each file's chain several times (kaggle10k: 66,000 calls)
def chain(path: str) -> tuple[str, ...]:
    """(root, step, step, ...) of a file's name: copy marks dropped, then trailing steps split off."""
    stem = _COPY_MARKS.sub("", PurePath(path).stem)
    steps = []
    while (m := _STEP.search(stem)) and m.start() > 0:
        steps.append(m.group(1).lower())
        stem = stem[: m.start()]
    return (stem.lower(), *reversed(steps))


@functools.lru_cache(maxsize=1 << 17)
def derived(path: str) -> bool:
    """The name says the file was made or copied from another (steps or copy marks)."""
    stem = PurePath(path).stem
    return bool(_COPY_MARKS.search(stem)) or len(chain(path)) > 1


NO_KIN = 1 << 20  # kinship of two chains with different roots


def kinship(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """Steps from one chain to the other through their last common ancestor (different roots: NO_KIN)."""
    if a[0] != b[0]:
        return NO_KIN
    common = 1
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    return len(a) + len(b) - 2 * common


# a family lies in its label's train, val and test folders: a root in more folders than these
# is a name every folder repeats (MURA's `image1.png`, in each of thousands of studies)
FOLDERS = 3


def families(paths: list[str], group_of: list[int], most: int,
             labels: list[str] | None = None) -> dict[tuple[str, str], list[int]]:
    """{(label, root): the groups its files lie in} for each root, within one label (sets number
    each class folder afresh), some file of which has a derived name, whose files lie in at most
    `most` groups or in at most FOLDERS folders: a root in many groups and many folders is a
    name every folder repeats, not a family; a chain that shattered into many fragments lies in
    its label's few folders."""
    labels = labels if labels is not None else [""] * len(paths)
    groups, folders, marked = defaultdict(set), defaultdict(set), set()
    for path, g, label in zip(paths, group_of, labels):
        key = (label, chain(path)[0])
        groups[key].add(g)
        folders[key].add(str(PurePath(path).parent))
        if derived(path):
            marked.add(key)
    return {key: sorted(groups[key]) for key in marked
            if len(groups[key]) <= most or len(folders[key]) <= FOLDERS}


def shared_roots(paths: list[str], group_of: list[int], most: int,
                 labels: list[str] | None = None) -> set[tuple[int, int]]:
    """Pairs of groups (g < h) holding files of one family (see families): every two of its
    groups where it lies in at most `most`; in more (a shattered chain), see parent_links."""
    found = families(paths, group_of, most, labels)
    out = {(g, h) for gs in found.values() if len(gs) <= most for i, g in enumerate(gs) for h in gs[i + 1:]}
    return out | parent_links(paths, group_of, {key for key, gs in found.items() if len(gs) > most}, labels)


def parent_links(paths: list[str], group_of: list[int], roots: set[tuple[str, str]],
                 labels: list[str] | None = None) -> set[tuple[int, int]]:
    """Pairs of groups (g < h) holding a file of one of `roots` ((label, root)) and its parent by
    name (its chain one step shorter): where a chain's fragments meet, one pair a file at most."""
    labels = labels if labels is not None else [""] * len(paths)
    holding = defaultdict(set)  # (label, chain): the groups of the files named so
    for path, g, label in zip(paths, group_of, labels):
        if (label, chain(path)[0]) in roots:
            holding[(label, chain(path))].add(g)
    return {(min(g, h), max(g, h)) for (label, name), gs in holding.items() if len(name) > 1
            for g in gs for h in holding.get((label, name[:-1]), ()) if g != h}
