"""File names as a hint for dedup (curate.names): a chain's fragment the hashes do not propose is
tried by its name, verification still decides, and names every folder repeats say nothing."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from curate import dedup, verify
from curate.names import NO_KIN, chain, derived, kinship, shared_roots

from tests.test_dedup import hashed_folder, jpeg
from tests.test_hashing import xray


def test_a_name_reads_back_as_its_chain_of_steps():
    assert chain("train/a/82-rotated1-rotated2.jpg") == ("82", "rotated1", "rotated2")
    assert chain("82-rotated1 - Copy (1).jpg") == chain("82-rotated1 (2).jpg") == ("82", "rotated1")
    assert chain("82 - Copy - Copy.jpg") == ("82",)
    assert chain("IMG0000630.jpg") == ("img0000630",) and not derived("IMG0000630.jpg")
    assert derived("82 (1).jpg") and derived("82-rotated1.jpg")
    parent, child, sibling = ("82", "rotated1"), ("82", "rotated1", "rotated2"), ("82", "rotated2")
    assert kinship(parent, child) == 1 and kinship(parent, sibling) == 2 and kinship(child, sibling) == 3
    assert kinship(("82",), ("83",)) == NO_KIN


def test_only_roots_a_derived_name_shares_over_a_few_groups_pair_their_groups():
    paths = ["82.jpg", "82-rotated1.jpg", "82-rotated2.jpg",  # one family in groups 0 and 1
             "a/7.jpg", "b/7.jpg",  # plain names that happen to repeat: no hint
             *[f"study{k}/image1_flip.png" for k in range(8)]]  # a name every folder repeats
    group_of = [0, 0, 1, 2, 3, *range(4, 12)]
    assert shared_roots(paths, group_of, most=6) == {(0, 1)}



def test_a_chain_shattered_over_many_groups_pairs_its_fragments_along_its_parents_names():
    # 82's chain lies in 4 groups (more than most=2) in one folder: each fragment pairs with its
    # parent's; a name every folder repeats (more folders than a family's) and one generic name
    # without steps (downloads numbered by the browser) pair nothing; 7's namesakes in two class
    # folders are two radiographs, not one family
    chain82 = ["t/82.jpg", "t/82-rotated1.jpg", "t/82-rotated1-rotated1.jpg", "t/82-rotated1-rotated1-rotated1.jpg",
               "t/82-rotated2.jpg", "v/82-rotated1-rotated1.jpg"]
    repeated = [f"s{k}/image1{step}.png" for k in range(4) for step in ("", "_flip")]
    downloads = [f"d/images ({k}).jpg" for k in range(1, 5)]
    paths = [*chain82, *repeated, *downloads, "t/7.jpg", "t/7-rotated1.jpg"]
    group_of = [0, 1, 2, 3, 0, 2, *range(10, 18), *range(20, 24), 30, 31]
    labels = [*["a"] * 6, *["a"] * 8, *["a"] * 4, "a", "b"]
    assert shared_roots(paths, group_of, most=2, labels=labels) == {(0, 1), (1, 2), (2, 3)}
    assert shared_roots(chain82, group_of[:6], most=6) == {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)}  # few: all


def augmented(img: np.ndarray, angle: float, zoom: float) -> np.ndarray:
    m = cv2.getRotationMatrix2D((111.5, 111.5), angle, zoom)
    return cv2.warpAffine(img, m, (224, 224), borderMode=cv2.BORDER_REPLICATE)


def test_a_fragment_only_its_name_proposes_joins_and_an_unrelated_namesake_does_not(tmp_path, monkeypatch):
    base, other = xray(5, 224, 224), xray(6, 224, 224)
    files = {"82": jpeg(base), "82-rotated1": jpeg(augmented(base, 18, 1.15)),
             "7": jpeg(other), "7-rotated1": jpeg(augmented(xray(9, 224, 224), 18, 1.15))}  # 7's namesake: another radiograph
    root, table = hashed_folder(tmp_path, files)
    # the hashes propose nothing: only the names can bring two files together
    none = pd.DataFrame({"a": [], "b": [], "dist": [], "variant": [], "channel": []})
    monkeypatch.setattr(dedup, "candidate_pairs", lambda t, **_: none)

    def groups() -> list[list[str]]:
        out = dedup.find_duplicates(table, root, workers=1)
        return sorted(out.groupby("group")["path"].agg(sorted).tolist())

    assert groups() == [["a/7-rotated1.jpg"], ["a/7.jpg"], ["a/82-rotated1.jpg", "a/82.jpg"]]
    monkeypatch.setattr(dedup, "NAME_GROUPS", 0)  # names unused: all four stay apart
    assert len(groups()) == 4


def test_a_kin_pair_that_fails_one_way_is_verified_the_other_way_round(monkeypatch):
    # verification warps b onto a's frame and is not symmetric: a kin pair gets both orders,
    # its result turned round to a -> b (turn and scale inverted, covers swapped)
    calls = []

    def one_way(fa, fb, *args, **kwargs):
        calls.append((fa, fb))
        if fa == "child":
            return verify.Match(False, 0.55)
        return verify.Match(True, 0.92, False, 12.0, 0.8, 30, 0.9, 0.7)

    monkeypatch.setattr(verify, "verify", one_way)
    plain = verify.Pair(0, 1, False, None, True, 2)
    assert not verify.verify_pair("child", "parent", plain).ok and len(calls) == 1
    m = verify.verify_pair("child", "parent", plain._replace(kin=True))
    assert calls[1:] == [("child", "parent"), ("parent", "child")]
    assert m.ok and m.score == 0.92 and m.beta == -12.0 and m.scale == 1.25 and (m.cover_a, m.cover_b) == (0.7, 0.9)


def test_a_kin_pair_keypoints_cannot_align_is_aligned_as_a_turn_and_zoom_about_the_centre(tmp_path, monkeypatch):
    # long thin bones on black leave the keypoints nothing to hold: a kin pair is then aligned as
    # augmentation scripts make copies, its turn and zoom about the centre read off log-polar maps
    base = xray(5, 224, 224)
    files = {"82": base, "82-rotated1": augmented(base, 18, 1.15), "7-rotated1": augmented(xray(6, 224, 224), 18, 1.15)}
    for name, img in files.items():
        (tmp_path / f"{name}.jpg").write_bytes(jpeg(img))
    parent, child, stranger = (verify.features(str(tmp_path / f"{n}.jpg")) for n in files)
    monkeypatch.setattr(verify, "verify", lambda *args, **kwargs: verify.Match(False, 0.0))  # no keypoint alignment
    pair = verify.Pair(0, 1, False, None, True, 2)
    assert not verify.verify_pair(parent, child, pair).ok  # names say nothing: no second look
    m = verify.verify_pair(parent, child, pair._replace(kin=True))
    assert m.ok and m.score >= verify.REFINED_CORRELATION
    assert abs(m.beta - 18) < 1 and abs(m.scale - 1.15) < 0.03 and not m.mirrored  # as verify() reads it
    assert not verify.verify_pair(parent, stranger, pair._replace(kin=True)).ok  # another radiograph


def test_a_weak_link_joins_two_groups_only_with_a_family_name_and_one_label(tmp_path, monkeypatch):
    # 82 and 82-rotated1 are one group, its two children another; the parent and child correlate
    # only 0.82 (a weak link: two exposures of one patient reach that). Names of one family with
    # one label join them; across labels (class folders numbered afresh) or unnamed, they stay apart.
    names = ["82", "82-rotated1", "82-rotated1-rotated1", "82-rotated1-rotated2"]
    root, table = hashed_folder(tmp_path, {n: jpeg(xray(5 + k, 224, 224)) for k, n in enumerate(names)})
    at = {n: table.index[table["path"] == f"a/{n}.jpg"][0] for n in names}
    scores = {tuple(sorted((at[x], at[y]))): s for x, y, s in
              [("82", "82-rotated1", 0.95), ("82-rotated1-rotated1", "82-rotated1-rotated2", 0.95),
               ("82-rotated1", "82-rotated1-rotated1", 0.82)]}
    proposed = pd.DataFrame([(a, b, 1, 0, "phash") for a, b in scores], columns=["a", "b", "dist", "variant", "channel"])
    monkeypatch.setattr(dedup, "candidate_pairs", lambda t, **_: proposed)
    monkeypatch.setattr(verify, "verify_pair", lambda fa, fb, p: verify.Match(True, scores[(p.a, p.b)])
                        if (p.a, p.b) in scores else verify.Match(False))

    def groups(t: pd.DataFrame) -> int:
        return dedup.find_duplicates(t, root, workers=1)["group"].nunique()

    assert groups(table) == 1
    children = table["path"].str.contains("rotated1-")
    assert groups(table.assign(label=np.where(children, "b", "a"))) == 2  # another label
    monkeypatch.setattr(dedup, "KIN_JOINS", 0)
    assert groups(table) == 2


def test_a_chain_in_more_fragments_than_name_groups_rejoins_along_its_parents(tmp_path, monkeypatch):
    # a 4-generation chain the hashes left in 5 fragments (more than NAME_GROUPS): each file and
    # its parent by name verify (one weakly, as kin), nothing else does; they end in one group
    names = ["82", "82-rotated1", "82-rotated1-rotated1", "82-rotated1-rotated1-rotated1", "82-rotated2"]
    root, table = hashed_folder(tmp_path, {n: jpeg(xray(5 + k, 224, 224)) for k, n in enumerate(names)})
    at = {table.index[table["path"] == f"a/{n}.jpg"][0]: n for n in names}
    none = pd.DataFrame({"a": [], "b": [], "dist": [], "variant": [], "channel": []})
    monkeypatch.setattr(dedup, "candidate_pairs", lambda t, **_: none)

    def parent_and_child(fa, fb, p):
        x, y = sorted((at[p.a], at[p.b]), key=len)
        if not y.startswith(x + "-") or "-" in y[len(x) + 1:]:
            return verify.Match(False)
        return verify.Match(True, 0.82 if y == "82-rotated1-rotated1-rotated1" else 0.95)

    monkeypatch.setattr(verify, "verify_pair", parent_and_child)
    monkeypatch.setattr(dedup, "NAME_GROUPS", 2)
    assert dedup.find_duplicates(table, root, workers=1)["group"].nunique() == 1
