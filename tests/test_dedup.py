"""Duplicate groups on small generated radiographs: every kind of copy is found, with its
angle and mirror; look-alikes stay apart; 1 and 2 workers agree; broken files get their own
group."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate.dedup import duplicates_frame, dups_summary, find_duplicates, group_pairs, label_conflicts, write_duplicates
from curate.verify import Match, _strict, _turned_alike, off_extremes
from curate.hashing import hash_images

from tests.test_hashing import scan_like, xray

BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT}


def jpeg(pixels: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def rotate_expand(img: np.ndarray, angle: float, border: str) -> np.ndarray:
    """Turn `angle` degrees CCW on a canvas big enough to keep every pixel."""
    h, w = img.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(h * s + w * c)), int(np.ceil(h * c + w * s))
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(img, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=BORDERS[border])


def same_size(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR)


# name -> (make the copy from the original's pixels, angle CCW, mirrored), as in curate.messy:
# mirror first, then rotate.
COPIES = {
    "reencoded": (lambda p: p, 0, False),
    "resized": (lambda p: cv2.resize(p, (110, 138), interpolation=cv2.INTER_AREA), 0, False),
    "squashed": (lambda p: cv2.resize(p, (200, 200)), 0, False),
    "toned": (lambda p: np.clip((p / 255.0) ** 0.75 * 255 * 0.8 + 25, 0, 255).astype(np.uint8), 0, False),
    "rot90": (lambda p: np.rot90(p, 1), 90, False),
    "rot180": (lambda p: np.rot90(p, 2), 180, False),
    "mirrored": (lambda p: np.fliplr(p), 0, True),
    "mirrored_rot270": (lambda p: np.rot90(np.fliplr(p), 3), 270, True),
    "rot17_black": (lambda p: rotate_expand(p, 17, "constant"), 17, False),
    "rot-33_reflect": (lambda p: rotate_expand(p, -33, "reflect"), -33, False),
    "mirrored_rot40_replicate": (lambda p: rotate_expand(np.fliplr(p), 40, "replicate"), 40, True),
    "zoomed": (lambda p: same_size(p, cv2.getRotationMatrix2D((79.5, 99.5), 0, 1.08)), 0, False),
    "shifted": (lambda p: same_size(p, np.float64([[1, 0, 12], [0, 1, -14]])), 0, False),
    "shifted_zoomed_out": (lambda p: same_size(p, np.float64([[0.93, 0, -9], [0, 0.93, 12]])), 0, False),
    "toned_clipped": (lambda p: np.clip((p / 255.0) ** 1.25 * 255 * 1.25 - 40, 0, 255).astype(np.uint8), 0, False),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """ROOT/<split>/<label>/: two originals with every kind of copy, look-alikes, junk."""
    root = tmp_path_factory.mktemp("dups") / "xrays"
    for src in (1, 2):
        orig = xray(src)
        files = {f"train/a/orig{src}.jpg": jpeg(orig)}
        files[f"val/a/exact{src}.jpg"] = files[f"train/a/orig{src}.jpg"]
        files[f"test/a/png{src}.png"] = None  # lossless re-save: same pixels, other bytes
        for i, (name, (make, _, _)) in enumerate(COPIES.items()):
            split = ("train", "val", "test")[i % 3]
            files[f"{split}/a/{name}{src}.jpg"] = jpeg(make(orig), 60 if name == "reencoded" else 92)
        for rel, data in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if data is None:
                Image.open(root / f"train/a/orig{src}.jpg").save(path)
            else:
                path.write_bytes(data)
    # look-alikes: same layout and bone, other blobs; one more under the other label
    for seed in (3, 4, 5):
        (root / "train/a").mkdir(parents=True, exist_ok=True)
        (root / "train/a" / f"other{seed}.jpg").write_bytes(jpeg(xray(seed)))
    (root / "test/b").mkdir(parents=True, exist_ok=True)
    (root / "test/b/conflict1.jpg").write_bytes(jpeg(xray(1), 80))  # orig1 under another label
    (root / "test/b/broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    (root / "test/b/notes.txt").write_text("not an image\n")

    table = scan_like(root)
    table["orig_split"] = table["path"].str.split("/").str[0]
    table["label"] = table["path"].str.split("/").str[1]
    table = hash_images(table, root, workers=1)
    return root, find_duplicates(table, root, workers=1)


def group_of(table: pd.DataFrame, path: str) -> int:
    return int(table.loc[table["path"] == path, "group"].iloc[0])


@pytest.mark.parametrize("src", [1, 2])
@pytest.mark.parametrize("name", ["exact", "png", *COPIES])
def test_every_kind_of_copy_joins_its_original(dataset, name, src):
    root, table = dataset
    copy = table[table["path"].str.endswith(f"/{name}{src}.jpg") | table["path"].str.endswith(f"/{name}{src}.png")]
    assert len(copy) == 1
    assert copy["group"].iloc[0] == group_of(table, f"train/a/orig{src}.jpg")


@pytest.mark.parametrize("name", [n for n, (_, a, m) in COPIES.items() if a or m])
def test_angle_and_mirror_are_recovered(dataset, name):
    root, table = dataset
    _, angle, mirrored = COPIES[name]
    row = table[table["path"].str.endswith(f"/{name}1.jpg")].iloc[0]
    assert table.loc[table["path"] == "train/a/orig1.jpg", "representative"].iloc[0]
    # dup_angle: un-mirror the file, then turn it this much CCW to get the representative
    expect = angle if mirrored else -angle
    assert abs((row["dup_angle"] - expect + 180) % 360 - 180) <= 2.0
    assert bool(row["mirrored"]) == mirrored


def test_look_alikes_and_the_two_originals_stay_apart(dataset):
    root, table = dataset
    groups = [group_of(table, p) for p in
              ("train/a/orig1.jpg", "train/a/orig2.jpg", "train/a/other3.jpg", "train/a/other4.jpg", "train/a/other5.jpg")]
    assert len(set(groups)) == 5
    for p in ("train/a/other3.jpg", "train/a/other4.jpg", "train/a/other5.jpg"):
        assert (table["group"] == group_of(table, p)).sum() == 1


def test_representative_is_the_upright_original_and_relations_say_what_changed(dataset):
    root, table = dataset
    g = table[table["group"] == group_of(table, "train/a/orig1.jpg")].set_index("path")
    assert g["representative"].sum() == 1 and g.loc["train/a/orig1.jpg", "representative"]
    assert g.loc["val/a/exact1.jpg", "relation"] == "exact"
    assert g.loc["test/a/png1.png", "relation"] == "pixel-identical"
    assert g.filter(like="rot90", axis=0)["relation"].iloc[0] == "rotated 90"
    assert g.filter(like="mirrored_rot270", axis=0)["relation"].iloc[0] == "mirrored+rotated 270"
    # an angle may come through a chain of verified pairs (each off by a fraction of a degree)
    assert g.filter(like="rot17", axis=0)["relation"].iloc[0] in ("rotated 16°", "rotated 17°", "rotated 18°")


def test_broken_files_get_their_own_group_and_leakage_and_conflicts_are_counted(dataset, tmp_path):
    root, table = dataset
    for p in ("test/b/broken.jpg", "test/b/notes.txt"):
        assert (table["group"] == group_of(table, p)).sum() == 1
    assert table["group"].notna().all() and len(table) == len(scan_like(root))
    conflicts = label_conflicts(table)
    assert len(conflicts) == 1 and conflicts["labels"].iloc[0] == "a;b"
    summary = dups_summary(table)
    assert summary["duplicate_groups"] == 2 and summary["label_conflicts"] == 1
    assert summary["leakage"]["train"]["val"]["groups"] == 2  # both originals have a copy in val
    out = write_duplicates(table, tmp_path / "duplicates.csv")
    written = pd.read_csv(out)
    assert list(written.columns) == ["group", "path", "split", "label", "relation", "angle", "mirrored", "score"]
    assert len(written) == len(duplicates_frame(table)) == summary["files_in_duplicate_groups"]


def test_one_and_two_workers_give_the_same_groups(dataset):
    root, table = dataset
    again = find_duplicates(hash_images(table.drop(columns=["group"]), root, workers=2), root, workers=2)
    cols = ["path", "group", "representative", "relation", "mirrored"]
    pd.testing.assert_frame_equal(again[cols], table[cols])


def test_a_rerun_verifies_only_pairs_with_a_changed_file(tmp_path, monkeypatch):
    import os

    from curate import dedup

    root = tmp_path / "xrays"
    (root / "a").mkdir(parents=True)
    orig = xray(1)
    for name, img in (("orig", orig), ("rot", rotate_expand(orig, 17, "constant")), ("mirror", np.fliplr(orig))):
        (root / "a" / f"{name}.jpg").write_bytes(jpeg(img))
    verified = []
    real = dedup.verify_pairs
    monkeypatch.setattr(dedup, "verify_pairs", lambda items, *a, **k: verified.append(len(items)) or real(items, *a, **k))

    per_run = []

    def run():  # (pairs are verified in rounds: one verify_pairs call each)
        before = sum(verified)
        out = find_duplicates(hash_images(scan_like(root), root, workers=1), root, workers=1, cache_dir=tmp_path / "cache")
        per_run.append(sum(verified) - before)
        return out

    first = run()
    second = run()
    assert per_run[0] >= 2 and per_run[1] == 0  # nothing changed: every pair came from the cache
    pd.testing.assert_frame_equal(first, second)
    st = (root / "a/rot.jpg").stat()
    os.utime(root / "a/rot.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # "changed"
    third = run()
    assert 0 < per_run[2] < per_run[0]  # only the pairs with rot.jpg again
    assert third["group"].nunique() == 1


def hashed_folder(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, pd.DataFrame]:
    """Write {name: JPEG bytes} to ROOT/a/NAME.jpg and hash them: (ROOT, table in path order)."""
    root = tmp_path / "xrays"
    (root / "a").mkdir(parents=True)
    for name, data in files.items():
        (root / "a" / f"{name}.jpg").write_bytes(data)
    return root, hash_images(scan_like(root), root, workers=1)


def test_a_pair_failed_on_a_wrong_mirror_hint_is_checked_again_before_it_keeps_groups_apart(tmp_path, monkeypatch):
    # Candidate pairs are verified trusting the hashes' mirror hint. When a wrong hint fails the
    # pair between a group's core and a copy, the copy must still join through another member.
    from curate import dedup

    orig = xray(3)
    # without audit columns the better file is the first path: "1_orig" makes the core
    root, table = hashed_folder(tmp_path, {"1_orig": jpeg(orig, 95), "2_copy": jpeg(orig, 70),
                                           "3_turned": jpeg(np.rot90(orig), 70)})
    core, turned = 0, 2  # rows, in path order
    real = dedup.verify_pairs

    def wrong_hint_on_core_and_turned(items, *args, **kwargs):
        found = real(items, *args, **kwargs)
        return [Match(False) if (a, b) == (core, turned) else m for (a, b, *_), m in zip(items, found)]

    monkeypatch.setattr(dedup, "verify_pairs", wrong_hint_on_core_and_turned)
    out = find_duplicates(table, root, workers=1)
    assert out["group"].nunique() == 1
    assert out["relation"].tolist() == ["representative", "re-encoded", "rotated 90"]


def test_the_dups_bar_counts_every_file_once_and_moves_while_pairs_are_verified(tmp_path):
    files = {}
    for k in range(3):
        orig = xray(10 + k)
        files |= {f"{k}_orig": jpeg(orig), f"{k}_turned": jpeg(rotate_expand(orig, 20 + 5 * k, "reflect"))}
    root, table = hashed_folder(tmp_path, files)
    steps = []
    find_duplicates(table, root, workers=1, progress=steps.append)
    assert sum(steps) == len(table) == 6
    # making features is a fifth of the bar; verifying the pairs (most of the time) the rest
    assert max(steps) >= 4


def test_a_group_is_checked_through_the_member_its_copies_verify_best_with(tmp_path, monkeypatch):
    # A re-encode and a turned copy of one original. Say the turned copy fails against the
    # re-encode (a heavy re-encode does that) but passes against the original. The re-encode
    # would make the core by path (no audit columns here); the original, which both copies
    # verify with, must make it, or the turned copy is left out of the group.
    from curate import verify

    orig = xray(5)
    root, table = hashed_folder(tmp_path, {"1_reencode": jpeg(orig, 80), "2_orig": jpeg(orig, 95),
                                           "3_turned": jpeg(np.rot90(orig), 90)})
    real_features, real_verify = verify.features, verify.verify

    def named_features(path, traced=False):
        f = real_features(path, traced)
        f.name = Path(path).stem
        return f

    def turned_fails_against_the_reencode(fa, fb, *args, **kwargs):
        if {fa.name, fb.name} == {"1_reencode", "3_turned"}:
            return Match(False)
        return real_verify(fa, fb, *args, **kwargs)

    monkeypatch.setattr(verify, "features", named_features)
    monkeypatch.setattr(verify, "verify", turned_fails_against_the_reencode)
    out = find_duplicates(table, root, workers=1)
    assert out["group"].nunique() == 1


def test_each_whole_frame_variant_gives_the_transform_that_aligns_the_two_frames(tmp_path):
    # a ~ T_v(b): b mirrored if v is odd, then turned v // 2 quarter turns counter-clockwise
    from curate.verify import _correlate, _frame_matrix, features

    b = xray(30)
    (tmp_path / "b.jpg").write_bytes(jpeg(b))
    fb = features(str(tmp_path / "b.jpg"))
    for v in range(8):
        a = np.ascontiguousarray(np.rot90(np.fliplr(b) if v % 2 else b, v // 2))
        (tmp_path / f"a{v}.jpg").write_bytes(jpeg(a))
        fa = features(str(tmp_path / f"a{v}.jpg"))
        b_seen = np.ascontiguousarray(fb.pixels[:, ::-1]) if v % 2 else fb.pixels
        assert _correlate(fa.pixels, b_seen, _frame_matrix(v, fa.pixels.shape, fb.pixels.shape))[0] > 0.95


def test_a_pair_keeps_its_variant_meaning_when_its_ends_swap():
    from curate.candidates import _pairs

    # found as (5, 2): 5 ~ T_v(2). Stored as (2, 5), so 2 ~ T_v'(5) with v' the inverse of v
    pairs = _pairs(np.array([5, 5, 5]), np.array([2, 2, 2]), [1, 1, 1], np.array([2, 3, 6]), "phash")
    assert pairs[["a", "b"]].values.tolist() == [[2, 5]] * 3
    assert pairs["variant"].tolist() == [6, 3, 2]  # a quarter turn is undone by three; a mirrored one by itself


def test_a_crushed_copy_the_keypoints_cannot_align_is_aligned_by_its_frame_hash(tmp_path, monkeypatch):
    # A tone change that crushes most pixels to black, mirrored and turned a quarter. On real
    # radiographs ORB then finds nothing to match; here we make it find nothing.
    from curate import verify

    orig = xray(21)
    crushed = np.clip((orig.astype(float) - np.percentile(orig, 85)) * 4, 0, 255).astype(np.uint8)
    (tmp_path / "orig.jpg").write_bytes(jpeg(orig))
    (tmp_path / "copy.jpg").write_bytes(jpeg(np.ascontiguousarray(np.rot90(np.fliplr(crushed)))))
    fo, fc = verify.features(str(tmp_path / "orig.jpg")), verify.features(str(tmp_path / "copy.jpg"))
    assert fc.clipped > 0.7
    nothing = np.zeros((0, 2), np.float32)
    monkeypatch.setattr(verify, "_matches", lambda a, b: (nothing, nothing, np.zeros(0), np.zeros(0)))

    assert not verify.verify(fc, fo, True, tries=1).ok
    found = verify.verify(fc, fo, True, tries=1, frame=3)  # copy ~ T_3(orig): mirrored, one quarter turn
    assert found.ok and found.mirrored and abs(found.beta - 90) < 2


def test_a_crushed_copy_whose_frames_already_agree_needs_no_refinement(tmp_path, monkeypatch):
    # On a frame this flat the sub-pixel refinement (ECC) can stray to a wrong alignment; frames
    # that already correlate as well as a refined pair must (0.86) are a copy without it.
    from curate import verify

    orig = xray(22)
    crushed = np.clip((orig.astype(float) - np.percentile(orig, 85)) * 4, 0, 255).astype(np.uint8)
    (tmp_path / "orig.jpg").write_bytes(jpeg(orig))
    (tmp_path / "copy.jpg").write_bytes(jpeg(crushed))
    fo, fc = verify.features(str(tmp_path / "orig.jpg")), verify.features(str(tmp_path / "copy.jpg"))
    nothing = np.zeros((0, 2), np.float32)
    monkeypatch.setattr(verify, "_matches", lambda a, b: (nothing, nothing, np.zeros(0), np.zeros(0)))
    monkeypatch.setattr(verify, "_refine", lambda a, b, m: np.float64([[0.7, 0, 19], [0, 1, -1]]))  # astray

    found = verify.verify(fo, fc, False, tries=1, frame=0)
    assert found.ok and found.score >= verify.REFINED_CORRELATION and abs(found.beta) < 1


def test_two_pictures_on_white_cornered_canvases_are_not_joined_by_their_frames(tmp_path, monkeypatch):
    # Two different pictures turned on fixed canvases with white corners, one crushed: aligned by
    # a frame hash's variant (a mirror), the deep equalisation saw the canvas edges agree (0.91
    # here; 0.91 on two FracAtlas radiographs). The common area's ranks, fill left out, do not.
    from curate import candidates, verify

    def turned(img: np.ndarray) -> np.ndarray:
        m = cv2.getRotationMatrix2D((100, 100), 13, 0.86)
        return cv2.warpAffine(cv2.GaussianBlur(img, (0, 0), 5), m, (200, 200), borderValue=255)

    def crushed(img: np.ndarray) -> np.ndarray:
        out = np.clip((img.astype(float) - np.percentile(img, 60)) * 3, 0, 255).astype(np.uint8)
        return np.where(img > 250, 255, out).astype(np.uint8)  # the corners stay white

    a = turned(xray(1, 200, 200))
    other = np.ascontiguousarray(crushed(turned(xray(2, 200, 200)))[:, ::-1])  # mirrored: its edges meet a's
    copy = np.ascontiguousarray(crushed(a)[:, ::-1])
    for name, img in (("a", a), ("other", other), ("copy", copy)):
        (tmp_path / f"{name}.jpg").write_bytes(jpeg(img))
    fa, fo, fc = (verify.features(str(tmp_path / f"{n}.jpg")) for n in ("a", "other", "copy"))
    assert fo.clipped >= candidates.CLIPPED and fc.clipped >= candidates.CLIPPED
    nothing = np.zeros((0, 2), np.float32)
    monkeypatch.setattr(verify, "_matches", lambda a, b: (nothing, nothing, np.zeros(0), np.zeros(0)))

    assert not verify.verify(fa, fo, True, tries=1, frame=1).ok
    assert verify.verify(fa, fc, True, tries=1, frame=1).ok


def test_a_near_miss_passes_only_when_refined_and_window_pairs_are_not_refined(tmp_path, monkeypatch):
    # A turned, blurred, heavily re-encoded copy: its keypoint alignment correlates 0.78-0.86,
    # and the sub-pixel refinement lifts it over the bar. Pairs only the shift/zoom windows
    # proposed are not refined (NO_REFINE_CHANNELS).
    from curate import dedup, verify

    orig = xray(41)
    copy = cv2.GaussianBlur(rotate_expand(orig, 23, "reflect"), (0, 0), 3.0)
    (tmp_path / "orig.jpg").write_bytes(jpeg(orig))
    (tmp_path / "copy.jpg").write_bytes(jpeg(copy, 10))
    fo, fc = verify.features(str(tmp_path / "orig.jpg")), verify.features(str(tmp_path / "copy.jpg"))
    assert verify.verify(fo, fc, False, tries=1).ok
    assert not verify.verify(fo, fc, False, tries=1, refine=False).ok

    asked = []

    def nothing_verifies(items, *args, **kwargs):
        asked.extend(items)
        return [Match(False)] * len(items)

    monkeypatch.setattr(dedup, "verify_pairs", nothing_verifies)
    proposed = pd.DataFrame({"a": [0, 0], "b": [1, 2], "dist": [3, 3], "variant": [0, 0],
                             "channel": ["rhash", "window"]})
    monkeypatch.setattr(dedup, "candidate_pairs", lambda t, **_: proposed)
    find_duplicates(pd.DataFrame({"path": ["a.jpg", "b.jpg", "c.jpg"], "hash_status": "ok"}), tmp_path, workers=1)
    assert [(p.a, p.b, p.refine) for p in asked] == [(0, 1, True), (0, 2, False)]


def test_a_put_off_refinement_gives_what_refining_at_once_gives(tmp_path):
    # The near miss above, verified with its refinement put off (DEFER): it fails, keeping its
    # alignment, and refining from that alignment later accepts it as verify does at once.
    from curate import verify

    orig = xray(41)
    copy = cv2.GaussianBlur(rotate_expand(orig, 23, "reflect"), (0, 0), 3.0)
    (tmp_path / "orig.jpg").write_bytes(jpeg(orig))
    (tmp_path / "copy.jpg").write_bytes(jpeg(copy, 10))
    fo, fc = verify.features(str(tmp_path / "orig.jpg")), verify.features(str(tmp_path / "copy.jpg"))
    at_once = verify.verify(fo, fc, False, tries=1)
    put_off = verify.verify(fo, fc, False, tries=1, defer=True)
    assert at_once.ok and not put_off.ok and put_off.pending is not None
    later = verify.verify_pair(fo, fc, verify.Pair(0, 1, False, None, True, start=put_off))
    assert later == at_once and later.pending is None



def test_a_put_off_affine_alignment_is_scored_when_taken_up(tmp_path):
    # A squashed copy: its similarity alignment is a near miss, its affine one passes. Put off
    # (DEFER_AFFINE), the affine alignment is kept unscored; taken up later, it gives what
    # verifying at once gives.
    from curate import verify

    orig = xray(30)
    copy = cv2.resize(orig, (int(orig.shape[1] * 0.8), orig.shape[0]), interpolation=cv2.INTER_AREA)
    (tmp_path / "orig.jpg").write_bytes(jpeg(orig))
    (tmp_path / "copy.jpg").write_bytes(jpeg(copy, 30))
    fo, fc = verify.features(str(tmp_path / "orig.jpg")), verify.features(str(tmp_path / "copy.jpg"))
    at_once = verify.verify(fo, fc, False, tries=1)
    put_off = verify.verify(fo, fc, False, tries=1, defer=True)
    assert at_once.ok and not put_off.ok and len(put_off.pending[2]) == 1
    later = verify.verify_pair(fo, fc, verify.Pair(0, 1, False, None, True, start=put_off))
    assert later == at_once and later.pending is None

def test_near_misses_are_refined_after_the_rounds_only_where_their_files_are_still_apart(tmp_path, monkeypatch):
    # Rounds: (0, 1) and (2, 3) are near misses, then (0, 2) and (1, 2) join 0, 1 and 2. Only
    # (2, 3) is refined after the rounds (its alignment kept), and joins 3.
    from curate import dedup

    near = {(0, 1), (2, 3)}
    refined = []

    def fake(items, *args, **kwargs):
        out = []
        for p in items:
            if p.start is not None:
                refined.append(p[:2])
                out.append(Match(True, 0.9))
            elif (p.a, p.b) in near:
                assert p.defer
                out.append(Match(False, 0.7, pending=(False, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0))))
            else:
                out.append(Match(True, 0.95))
        return out

    monkeypatch.setattr(dedup, "verify_pairs", fake)
    proposed = pd.DataFrame({"a": [0, 2, 0, 1], "b": [1, 3, 2, 2], "dist": [1, 1, 2, 3], "variant": 0,
                             "channel": "rhash"})
    monkeypatch.setattr(dedup, "candidate_pairs", lambda t, **_: proposed)
    out = find_duplicates(pd.DataFrame({"path": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"], "hash_status": "ok"}),
                          tmp_path, workers=1)
    assert refined == [(2, 3)]
    assert out["group"].nunique() == 1


def test_a_copy_turned_on_a_black_canvas_keeps_its_own_nearest_disc_match():
    # Disc codes made by hand. File 0 is an original; 1-3 are look-alikes whose discs sit 2 bits
    # from its whole disc; 4 is a copy turned on a grown canvas, whose smaller disc sits 6 bits
    # away. The original keeps only its RHASH_TOP (3) nearest: the look-alikes. The copy gets its
    # own nearest (the original) only when its black wedges show in dark_share.
    from curate.candidates import candidate_pairs
    from curate.hashing import RHASH_COLUMNS

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 2**63, (5, len(RHASH_COLUMNS)), dtype=np.uint64)  # far apart
    whole = codes[0, 0]
    for i, bits in ((1, (3, 40)), (2, (7, 51)), (3, (12, 60)), (4, (1, 9, 22, 33, 47, 58))):
        codes[i, 5] = whole ^ np.uint64(sum(1 << b for b in bits))
    table = pd.DataFrame(codes, columns=list(RHASH_COLUMNS))
    table.insert(0, "phash", rng.integers(0, 2**63, 5, dtype=np.uint64))
    table.insert(0, "hash_status", "ok")

    def proposed(dark_share: float) -> set:
        pairs = candidate_pairs(table.assign(dark_share=[0.0, 0.0, 0.0, 0.0, dark_share]))
        return set(zip(pairs["a"], pairs["b"]))

    assert proposed(0.0) == {(0, 1), (0, 2), (0, 3)}
    assert proposed(0.3) == {(0, 1), (0, 2), (0, 3), (0, 4)}


def _far_apart_codes(columns, seed: int) -> pd.DataFrame:
    """Four hashed files whose codes (columns, and a phash) are random, so far apart: no pairs."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(rng.integers(0, 2**63, (4, len(columns)), dtype=np.uint64), columns=list(columns))
    table.insert(0, "phash", rng.integers(0, 2**63, 4, dtype=np.uint64))
    table.insert(0, "hash_status", "ok")
    return table


def test_a_copy_shifted_into_a_fill_is_asked_for_by_its_trimmed_frames_window():
    # Window codes made by hand. File 1 is a shifted copy of file 0: its own centred window
    # (whash_0) is far from all of 0's windows, but the centred window of its trimmed frame
    # (twhash) sits 3 bits from one of them. Files 2 and 3 are unrelated.
    from curate.candidates import candidate_pairs
    from curate.hashing import WHASH_COLUMNS

    table = _far_apart_codes(WHASH_COLUMNS, seed=1)
    untrimmed = table["whash_0"].to_numpy()  # twhash is whash_0 when there was nothing to trim
    trimmed = untrimmed.copy()
    trimmed[1] = table.loc[0, WHASH_COLUMNS[17]] ^ np.uint64((1 << 5) | (1 << 30) | (1 << 61))

    def proposed(twhash) -> set:
        pairs = candidate_pairs(table.assign(twhash=twhash))
        return set(zip(pairs["a"], pairs["b"], pairs["channel"]))

    assert proposed(untrimmed) == set()
    assert proposed(trimmed) == {(0, 1, "twindow")}


def test_a_copy_turned_and_zoomed_is_asked_for_by_its_ring_hash():
    # Ring codes made by hand: file 1's window moved by two rings (a zoom) sits 3 bits from
    # file 0's middle window; files 2 and 3 are unrelated. The ring hash cannot tell a mirror,
    # so such a pair is verified both ways (Pair.tries, set in find_duplicates).
    from curate.candidates import candidate_pairs
    from curate.hashing import RING_COLUMNS

    table = _far_apart_codes(RING_COLUMNS, seed=2)
    pairs = candidate_pairs(table)
    assert pairs.empty
    table.loc[1, "ring_2"] = table.loc[0, "ring_4"] ^ np.uint64((1 << 3) | (1 << 31) | (1 << 60))
    pairs = candidate_pairs(table)
    assert set(zip(pairs["a"], pairs["b"], pairs["channel"])) == {(0, 1, "ring")}


def test_a_copy_turned_about_the_centre_is_scored_on_the_common_area_alone():
    # b: a turned 20 degrees and zoomed 0.9 about the centre, corners filled white. Aligned
    # exactly, the band-pass rings along the white corners' edges in b, not in a: the plain
    # correlation falls below MERGE_CORRELATION; on the common area alone it is ~1.
    from curate.verify import MERGE_CORRELATION, _centred, _correlate

    a = cv2.equalizeHist(xray(5, 192, 192))
    m = cv2.getRotationMatrix2D((95.5, 95.5), 20, 0.9)
    b = cv2.warpAffine(a, m, (192, 192), borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    back = cv2.invertAffineTransform(m)  # b's frame -> a's
    assert _centred(back, b.shape, a.shape)
    assert _correlate(b, a, back)[0] < MERGE_CORRELATION
    assert _correlate(b, a, back, common=True)[0] > 0.98
    shifted = back + np.array([[0, 0, 6.0], [0, 0, -4.0]])  # a shift moves the centre: not augmentation's turn
    assert not _centred(shifted, b.shape, a.shape)


def test_a_score_asked_only_whether_it_reaches_a_bar_stops_once_it_does(tmp_path):
    # b turned 20 degrees and zoomed 0.9 about the centre, white corners: its band-passed frames
    # correlate ~0.85 with a, the common area ~0.98. Asked only whether it reaches 0.65, the
    # score stops at the frames' 0.85; the answer to "does it reach the bar" never changes.
    from curate import verify

    a = xray(5, 192, 192)
    m = cv2.getRotationMatrix2D((95.5, 95.5), 20, 0.9)
    (tmp_path / "a.jpg").write_bytes(jpeg(a))
    (tmp_path / "b.jpg").write_bytes(jpeg(cv2.warpAffine(a, m, (192, 192), borderMode=cv2.BORDER_CONSTANT,
                                                         borderValue=255)))
    fa, fb = verify.features(str(tmp_path / "a.jpg")), verify.features(str(tmp_path / "b.jpg"))
    back = cv2.invertAffineTransform(m)  # b's frame -> a's
    full = verify._score(fb, fa, False, back)[0]
    assert full > 0.95
    assert verify._score(fb, fa, False, back, enough=0.65)[0] < 0.9  # stopped before the common area
    for bar in (0.3, 0.65, 0.9, 0.99):
        assert (verify._score(fb, fa, False, back, enough=bar)[0] >= bar) == (full >= bar)


# ---- grouping verified pairs: strong links chain, weak links only bring a lone picture -------


def grouped(verified: dict) -> list[list[int]]:
    """group_pairs on hand-made verified pairs (file 0 makes the best core, then 1, ...)."""
    groups = group_pairs(4, verified, better=lambda x, y: x < y)
    return sorted(sorted(m) for m in groups.members.values())


def test_two_exposures_each_with_a_copy_are_not_joined_by_a_weak_link():
    # 0, 1: an exposure and its copy; 2, 3: a second exposure of the same limb and its copy.
    # The exposures correlate 0.82: enough to pass as a pair, too weak to join two groups.
    pairs = {(0, 1): Match(True, 0.99), (2, 3): Match(True, 0.98), (0, 2): Match(True, 0.82), (1, 3): Match(True, 0.81)}
    assert grouped(pairs) == [[0, 1], [2, 3]]


def test_a_lone_copy_joins_on_a_link_that_would_not_join_two_groups():
    pairs = {(0, 1): Match(True, 0.99), (0, 2): Match(True, 0.82)}
    assert grouped(pairs) == [[0, 1, 2], [3]]


def test_two_groups_of_one_original_join_when_their_cores_match_well():
    pairs = {(0, 1): Match(True, 0.99), (2, 3): Match(True, 0.98), (0, 2): Match(True, 0.93)}
    assert grouped(pairs) == [[0, 1, 2, 3]]


def test_two_groups_join_on_a_strong_pair_even_if_their_cores_match_less_well():
    pairs = {(0, 1): Match(True, 0.99), (2, 3): Match(True, 0.98), (1, 3): Match(True, 0.95), (0, 2): Match(True, 0.83)}
    assert grouped(pairs) == [[0, 1, 2, 3]]


def test_two_exposures_framed_apart_are_not_joined_by_a_strong_pair_but_a_lone_one_still_joins():
    # 0, 1 and 2, 3 as above, but the exposures verify at 0.93 with their frames shifted 8% apart
    # (two exposures of one pelvis at 224 px, kaggle seed 101): strong as a score, but a shift
    # between two whole frames is not what augmentation's turns and zooms about the centre make.
    apart = Match(True, 0.93, offset=0.08)
    assert not apart.strong and Match(True, 0.93, offset=0.01).strong
    assert grouped({(0, 1): Match(True, 0.99), (2, 3): Match(True, 0.98), (1, 2): apart}) == [[0, 1], [2, 3]]
    # a shifted copy with no copies of its own still joins its original's group
    assert grouped({(0, 1): Match(True, 0.99), (1, 2): apart}) == [[0, 1, 2], [3]]


def test_verification_measures_how_far_a_pair_is_framed_apart(tmp_path):
    # two windows of one scene 10% apart (a second exposure, framed differently) against a copy
    # turned 12 degrees and zoomed 1.1 about the centre: the first pair's alignment moves the
    # frame centre by ~0.1 of the side, the second's keeps it
    from curate.verify import OFF_CENTRE, features, verify

    scene = xray(21, 240, 220)
    first, second = scene[:200], scene[20:220]
    turned = cv2.warpAffine(first, cv2.getRotationMatrix2D((109.5, 99.5), 12, 1.1), (220, 200),
                            borderMode=cv2.BORDER_REPLICATE)
    paths = {}
    for name, img in (("first", first), ("second", second), ("turned", turned)):
        paths[name] = tmp_path / f"{name}.png"
        cv2.imwrite(str(paths[name]), img)
    fa, fb, fc = (features(str(paths[k])) for k in ("first", "second", "turned"))
    shifted, copy = verify(fa, fb), verify(fa, fc)
    assert shifted.ok and copy.ok
    assert shifted.offset > 0.08 and not shifted.strong
    assert copy.offset < OFF_CENTRE / 3 and copy.strong


def test_a_re_toned_turned_copy_is_scored_on_the_ranks_of_the_common_area():
    # b: a turned 20 degrees and zoomed 0.9 about the centre, corners filled white, then a gamma,
    # contrast and brightness change (as kaggle-style augmentation does). Each frame equalised as
    # a whole (fill included) bends the two copies' grey levels apart: on the common area they
    # correlate < 0.75; their grey levels' ranks there correlate ~1; another radiograph's do not.
    from curate.verify import RANK_CORRELATION, _correlate, _overlap, _ranked_common, _warp

    raw = xray(5, 192, 192)
    m = cv2.getRotationMatrix2D((95.5, 95.5), 20, 0.9)
    b = cv2.warpAffine(raw, m, (192, 192), borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    b = np.clip(np.rint(((b / 255.0) ** 1.25 * 255.0 - 128) * 1.1 + 128 - 18), 0, 255).astype(np.uint8)
    a, b = cv2.equalizeHist(raw), cv2.equalizeHist(b)
    back = cv2.invertAffineTransform(m)  # b's frame -> a's
    inside = _overlap(b.shape, a.shape, back)[0]
    assert _correlate(b, a, back, common=True)[0] < 0.75
    assert _ranked_common(b, a, _warp(a, back, b.shape), inside) > RANK_CORRELATION
    other = cv2.equalizeHist(xray(15, 192, 192))
    assert _ranked_common(b, other, _warp(other, back, b.shape), inside) < 0.5

def test_a_chain_of_strong_links_is_one_group_though_its_ends_do_not_match():
    # a copy of a copy of a copy: each verifies against the one it was made from, not beyond
    pairs = {(0, 1): Match(True, 0.95), (1, 2): Match(True, 0.92), (2, 3): Match(True, 0.90)}
    assert grouped(pairs) == [[0, 1, 2, 3]]


def test_looser_matches_count_only_when_their_keypoints_turned_alike():
    # 5 matches pass the strict ratio test; 30 looser ones turned their keypoints by about 40
    # degrees, as a turned copy does; 30 more point every which way, as wrong matches do.
    rng = np.random.default_rng(0)
    n = 65
    points = rng.uniform(0, 190, (n, 2)).astype(np.float32)
    ratio = np.r_[np.full(5, 0.7), np.full(60, 0.85)]
    turn = np.r_[np.full(35, 40.0) + rng.normal(0, 3, 35), rng.uniform(0, 360, 30)] % 360
    matches = (points, points, ratio, turn)
    assert len(_strict(matches)[0]) == 5
    assert 35 <= len(_turned_alike(matches)[0]) <= 40  # the 35 alike, and the odd wrong one by chance


def test_a_four_generation_chain_whose_ends_do_not_verify_is_one_group(tmp_path):
    # Kaggle-style augmentation: each generation turns and zooms the previous one's output on
    # the fixed canvas and saves it again; after four, the ends share too little to verify
    from curate.verify import features, verify

    def augmented(img):
        m = cv2.getRotationMatrix2D((112, 112), 30, 1.25)
        return cv2.imdecode(np.frombuffer(jpeg(cv2.warpAffine(img, m, (224, 224))), np.uint8), cv2.IMREAD_GRAYSCALE)

    chain = [xray(5, 224, 224)]
    for _ in range(4):
        chain.append(augmented(chain[-1]))
    root, table = hashed_folder(tmp_path, {f"gen{k}": jpeg(img) for k, img in enumerate(chain)} | {"other": jpeg(xray(6, 224, 224))})
    ends = [features(str(root / "a" / f"gen{k}.jpg")) for k in (0, 4)]
    assert not verify(*ends).ok and not verify(*ends[::-1]).ok
    out = find_duplicates(table, root, workers=1)
    groups = out.groupby("group")["path"].agg(sorted).tolist()
    assert sorted(groups) == [[f"a/gen{k}.jpg" for k in range(5)], ["a/other.jpg"]]


def test_pairs_already_joined_are_not_verified_and_byte_copies_never(tmp_path, monkeypatch):
    from curate import dedup

    orig = xray(7)
    files = {f"q{q}": jpeg(orig, q) for q in (95, 90, 85, 80, 75)}  # five pictures of one radiograph
    files["q95 - Copy"] = files["q95"]  # and a byte copy
    root, table = hashed_folder(tmp_path, files)
    asked = []
    real = dedup.verify_pairs
    monkeypatch.setattr(dedup, "verify_pairs", lambda items, *a, **k: asked.extend(items) or real(items, *a, **k))
    out = find_duplicates(table, root, workers=1)
    assert out["group"].nunique() == 1
    twins = set(np.flatnonzero(table["path"].isin(["a/q95.jpg", "a/q95 - Copy.jpg"])).tolist())
    assert len(twins & {i for p in asked for i in p[:2]}) == 1  # one of the two stands for both
    assert 4 <= len(asked) < 10  # a tree over the five pictures, not all 10 pairs


def test_a_round_takes_each_groups_strongest_pairs_and_window_pairs_only_for_a_lone_picture():
    from curate.dedup import _Groups, _round
    from curate.verify import Pair

    groups = _Groups(6, lambda x, y: x < y)
    groups.link(0, 1, (0, 0.0))
    groups.link(2, 3, (0, 0.0))  # two groups of copies; 4 and 5 alone
    items = [Pair(0, 1, False, None, True),  # already joined
             Pair(1, 2, False, None, False, lone=True),  # a window pair between two groups of copies
             Pair(0, 4, False, None, False, lone=True),  # one for a lone picture
             Pair(0, 2, False, None, True), Pair(1, 3, False, None, True), Pair(4, 5, False, None, True)]
    taken, left = _round(items, groups, budget=1)
    assert [p[:2] for p in taken] == [(0, 4), (0, 2), (4, 5)]
    assert [p[:2] for p in left] == [(1, 3)]  # both groups used their one pair this round


def test_pairs_left_after_the_last_round_are_not_verified(tmp_path, monkeypatch):
    from curate import dedup

    files = {f"q{q}": jpeg(xray(7), q) for q in (95, 85)} | {"q95 - Copy": jpeg(xray(7), 95)}
    root, table = hashed_folder(tmp_path, files)
    asked = []
    real = dedup.verify_pairs
    monkeypatch.setattr(dedup, "verify_pairs", lambda items, *a, **k: asked.extend(items) or real(items, *a, **k))
    monkeypatch.setattr(dedup, "ROUND_BUDGETS", ())  # no round at all
    out = find_duplicates(table, root, workers=1)
    assert asked == []
    assert sorted(out.groupby("group")["path"].agg(sorted).tolist()) == [["a/q85.jpg"], ["a/q95 - Copy.jpg", "a/q95.jpg"]]


def test_a_rerun_with_the_same_input_takes_the_last_result_back(tmp_path, monkeypatch):
    """Same files, same table, same code: no candidates, no verification, the same columns;
    any change to the table (here a label) works again."""
    from curate import dedup

    orig = xray(8)
    root, table = hashed_folder(tmp_path, {"orig": jpeg(orig), "turned": jpeg(rotate_expand(orig, 15, "constant")),
                                           "other": jpeg(xray(9))})
    first = find_duplicates(table, root, workers=1, cache_dir=tmp_path / "cache")
    real = dedup.candidate_pairs
    monkeypatch.setattr(dedup, "candidate_pairs", lambda t, **_: pytest.fail("worked again"))
    again = find_duplicates(table, root, workers=1, cache_dir=tmp_path / "cache")
    pd.testing.assert_frame_equal(first, again)
    calls = []
    monkeypatch.setattr(dedup, "candidate_pairs", lambda t, **_: calls.append(1) or real(t))
    relabelled = find_duplicates(table.assign(label="x"), root, workers=1, cache_dir=tmp_path / "cache")
    assert calls == [1] and relabelled["group"].tolist() == first["group"].tolist()


def test_a_rerun_with_nothing_changed_makes_no_features(tmp_path, monkeypatch):
    from curate import verify

    orig = xray(8)
    root, table = hashed_folder(tmp_path, {"orig": jpeg(orig), "turned": jpeg(rotate_expand(orig, 15, "constant"))})
    find_duplicates(table, root, workers=1, cache_dir=tmp_path / "cache")
    pair_cache = next((tmp_path / "cache").glob("pairs-*.npz"))
    written = pair_cache.stat().st_mtime_ns
    made = []
    real = verify.features
    monkeypatch.setattr(verify, "features", lambda path, traced=False: made.append(path) or real(path, traced))
    steps = []
    again = find_duplicates(table, root, workers=1, cache_dir=tmp_path / "cache", progress=steps.append)
    assert made == [] and again["group"].nunique() == 1 and sum(steps) == len(table)
    assert pair_cache.stat().st_mtime_ns == written  # nothing new to keep: not written again


def test_the_half_size_refinement_finds_the_full_size_transform():
    """_coarse_refine aligns at half size but answers in full-size coordinates: from a start a
    few pixels off it lands within a pixel of the true transform (a -> b), as _refine does."""
    from curate.verify import _coarse_refine, _refine

    a = cv2.resize(xray(5), (150, 190), interpolation=cv2.INTER_AREA)
    true = cv2.getRotationMatrix2D((70.0, 100.0), 4.0, 1.05)  # a's coordinates -> b's
    b = cv2.warpAffine(a, true, (a.shape[1], a.shape[0]), borderMode=cv2.BORDER_REFLECT)  # b(true x) = a(x)
    start = true + np.array([[0.0, 0.0, 3.0], [0.0, 0.0, -2.5]])
    corners = np.array([[0, 0, 1], [149, 0, 1], [0, 189, 1], [149, 189, 1]], float).T
    for w in (_coarse_refine(a, b, start), _refine(a, b, start)):
        assert w is not None and np.abs(w @ corners - true @ corners).max() < 1.0


def test_two_nearest_matches_opencv_with_and_without_faiss(monkeypatch):
    """Keypoint matching by faiss gives cv2.batchDistance's distances and, where the nearest is
    unique, its neighbours; without faiss it falls back to cv2."""
    from curate import verify

    rng = np.random.default_rng(0)
    da, db = (rng.integers(0, 256, (n, 32), dtype=np.uint8) for n in (300, 250))
    db[:40] = da[:40] ^ (rng.random((40, 32)) < 0.02).astype(np.uint8)  # 40 near copies
    ref_d, ref_n = cv2.batchDistance(da, db, -1, normType=cv2.NORM_HAMMING, K=2, update=0, crosscheck=False)
    for faiss in (verify._faiss(), None):
        monkeypatch.setattr(verify, "_faiss", lambda faiss=faiss: faiss)
        d, n = verify._two_nearest(da, db)
        assert d.dtype == ref_d.dtype and np.array_equal(d, ref_d)
        unique = ref_d[:, 0] < ref_d[:, 1]
        assert np.array_equal(n[unique, 0], ref_n[unique, 0]) and np.array_equal(n[:40, 0], np.arange(40))


def test_dup_scale_is_each_members_content_scale_against_the_representative(dataset):
    """orient tells a copy cut from its original (zoomed in: it shows less) by it."""
    root, table = dataset
    g = table[table["group"] == group_of(table, "train/a/orig1.jpg")].set_index("path")
    assert g.loc["train/a/orig1.jpg", "dup_scale"] == 1.0
    zoomed = g.filter(like="/zoomed1", axis=0)["dup_scale"].iloc[0]
    resized = g.filter(like="/resized1", axis=0)["dup_scale"].iloc[0]
    assert abs(zoomed - 1.08) <= 0.02 and abs(resized - 138 / 200) <= 0.04, (zoomed, resized)  # measured: 1.089, 0.718


def test_levels_off_the_extremes_of_a_nearly_black_image_are_none_and_warn_nothing():
    black = np.array([[0, 1], [1, 0]], np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # uint8 max() - 2 would wrap round with an overflow warning
        assert not off_extremes(black, black).any()
    ramp = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)
    kept = ramp[off_extremes(ramp, ramp)]
    assert kept.min() == 3 and kept.max() == 252


def test_a_second_look_is_taken_in_full_only_where_its_glance_comes_near_its_bar(tmp_path, monkeypatch):
    # b: a turned 45 degrees and zoomed 0.7 about the centre, white corners: its band-passed frames
    # correlate ~0.5 with a (under SECOND_GLANCE), its common area ~0.98, glanced at half size at
    # ~0.95: the second look is taken and lifts it. c: another radiograph, aligned on the same
    # centre: its glances (~0) rule the second look out, and its score stays what the look gave.
    from curate import verify

    a = xray(5, 192, 192)
    m = cv2.getRotationMatrix2D((95.5, 95.5), 45, 0.7)
    (tmp_path / "a.jpg").write_bytes(jpeg(a))
    (tmp_path / "b.jpg").write_bytes(jpeg(cv2.warpAffine(a, m, (192, 192), borderMode=cv2.BORDER_CONSTANT,
                                                         borderValue=255)))
    (tmp_path / "c.jpg").write_bytes(jpeg(xray(7, 192, 192)))
    fa, fb, fc = (verify.features(str(tmp_path / f"{x}.jpg")) for x in "abc")
    taken, real = [], verify._common_ncc
    monkeypatch.setattr(verify, "_common_ncc", lambda inside, *pairs, half=False: taken.append(half) or
                        real(inside, *pairs, half=half))
    back = cv2.invertAffineTransform(m)  # b's frame -> a's
    assert verify._score(fb, fa, False, back, enough=-1.0)[0] < verify.SECOND_GLANCE
    taken.clear()
    assert verify._score(fb, fa, False, back)[0] > 0.95 and taken == [True, False]  # glanced, then taken
    taken.clear()
    centres = np.float64([[1, 0, 0], [0, 1, 0]])
    glanced = verify._score(fa, fc, False, centres)[0]
    assert taken == [True]  # the glance only
    monkeypatch.setattr(verify, "SECOND_GLANCE", -1.0)  # no glances: the second look in full
    assert verify._score(fa, fc, False, centres)[0] == glanced and taken[-1] is False


def test_a_loose_alignment_is_scored_in_full_only_where_its_glance_comes_near_the_bar(tmp_path):
    # Only a score of LOOSE_FLOOR counts for a loose alignment: a copy shifted by (9, 5) px is
    # scored in full; another radiograph under the same shift gets its half-size glance back.
    from curate import verify

    a = xray(5, 192, 192)
    shift = np.float64([[1, 0, -9], [0, 1, -5]])  # a -> b: b(x) = a(x + (9, 5))
    (tmp_path / "a.jpg").write_bytes(jpeg(a))
    (tmp_path / "b.jpg").write_bytes(jpeg(cv2.warpAffine(a, cv2.invertAffineTransform(shift), (192, 192),
                                                         flags=cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)))
    (tmp_path / "c.jpg").write_bytes(jpeg(xray(7, 192, 192)))
    fa, fb, fc = (verify.features(str(tmp_path / f"{x}.jpg")) for x in "abc")
    assert verify._score(fa, fb, False, shift, bar=verify.LOOSE_FLOOR) == verify._score(fa, fb, False, shift)
    assert verify._score(fa, fb, False, shift)[0] > 0.9
    other = verify._score(fa, fc, False, shift, bar=verify.LOOSE_FLOOR)[0]
    assert other == verify._glance(fa, fc, False, shift) < verify.LOOSE_FLOOR - verify.GLANCE_MARGIN


def test_the_channels_searched_side_by_side_propose_the_same_pairs(tmp_path, monkeypatch):
    from curate import candidates

    files = {f"q{q}": jpeg(xray(7), q) for q in (95, 80)} | {"turned": jpeg(np.rot90(xray(7)).copy())}
    files |= {f"other{s}": jpeg(xray(s)) for s in (8, 9)}
    _, table = hashed_folder(tmp_path, files)
    alone = candidates.candidate_pairs(table, workers=1)
    monkeypatch.setattr(candidates, "PARALLEL_SEARCH", 0)  # (a table this small is otherwise searched in-process)
    side_by_side = candidates.candidate_pairs(table, workers=2)
    assert len(alone) >= 3
    pd.testing.assert_frame_equal(side_by_side, alone)


def test_keypoints_a_worker_makes_are_kept_for_later_rounds(tmp_path):
    # A worker's copy of the features ends with its round: the mirrored keypoints it had to make
    # (pairs the hashes call mirrored) come back with the results, so no later round makes them again.
    from curate.verify import Pair, features, verify_pairs

    root, _ = hashed_folder(tmp_path, {"a": jpeg(xray(7)), "b": jpeg(np.fliplr(xray(7)).copy())})
    paths = [str(root / "a" / f"{n}.jpg") for n in ("a", "b")]
    feats = {i: features(p) for i, p in enumerate(paths)}
    pairs = [Pair(0, 1, True, None, True)] * 32  # enough batches for a pool of two workers
    matches = verify_pairs(pairs, paths, workers=2, features=feats)
    assert all(m.ok and m.mirrored for m in matches)
    assert feats[1]._mirrored is not None and feats[0]._mirrored is None  # (a is never mirrored)


def test_small_files_make_features_and_traces_from_one_decode(tmp_path):
    """A file under 2 * VERIFY_SIDE a side is decoded once at TRACE_SIDE for both its features
    and its traces (libjpeg reduces neither size): the same pixels, keypoints and traces as
    decoding it for each; larger files are not marked small."""
    from curate import traces, verify

    img = xray(seed=4)
    for name, pixels in (("tall.jpg", cv2.resize(img, (150, 220))), ("turned.png", np.rot90(cv2.resize(img, (300, 170))))):
        (tmp_path / name).write_bytes(jpeg(pixels) if name.endswith(".jpg") else cv2.imencode(".png", pixels)[1].tobytes())
        one, both = verify.features(str(tmp_path / name)), verify.features(str(tmp_path / name), traced=True)
        assert one.traces is None and both.traces == traces.traces(str(tmp_path / name)) is not None
        assert np.array_equal(one.pixels, both.pixels) and np.array_equal(one.flat, both.flat)
        assert one.clipped == both.clipped and all(np.array_equal(x, y) for x, y in zip(one.keypoints, both.keypoints))
    table = pd.DataFrame({"width": [220, 384, 0, 500], "height": [150, 100, 0, 300]})
    assert verify.small_rows(table).tolist() == [True, False, False, False]
    assert not verify.small_rows(table.drop(columns="width")).any()


def test_the_affine_is_tried_only_where_the_similarity_found_some_agreement(tmp_path, monkeypatch):
    # 40 strict matches that agree on nothing (a look-alike): the similarity finds a few inliers
    # by chance and the affine (the costlier RANSAC) is not tried; 10 of them on one turn and
    # zoom (short of MIN_INLIERS for the similarity) and the affine is tried as before.
    from curate import verify

    (tmp_path / "a.jpg").write_bytes(jpeg(xray(41)))
    (tmp_path / "b.jpg").write_bytes(jpeg(xray(42)))
    fa, fb = verify.features(str(tmp_path / "a.jpg")), verify.features(str(tmp_path / "b.jpg"))
    rng = np.random.default_rng(0)
    pa = rng.uniform(0, 190, (40, 2)).astype(np.float32)
    pb = rng.uniform(0, 190, (40, 2)).astype(np.float32)
    turn = cv2.getRotationMatrix2D((95, 95), 20, 0.9)
    agreeing = pb.copy()
    agreeing[:10] = pa[:10] @ turn[:, :2].T + turn[:, 2]
    tried = []
    real = cv2.estimateAffine2D
    monkeypatch.setattr(verify.cv2, "estimateAffine2D", lambda *a, **k: tried.append(1) or real(*a, **k))
    for points, affine in ((pb, 0), (agreeing, 1)):
        tried.clear()
        monkeypatch.setattr(verify, "_strict", lambda matches, points=points: (pa, points))
        monkeypatch.setattr(verify, "_turned_alike", lambda matches: (pa[:0], pa[:0]))
        assert not verify.verify(fa, fb, tries=1).ok
        assert len(tried) == affine


def test_verification_batches_shrink_toward_the_end():
    # Every pair once, in order; none over VERIFY_BATCH; the last few small, so two workers end a
    # round together (a round's 2,218 pairs in 9 equal batches left one worker a whole batch alone).
    from curate import verify

    pairs = list(range(2218))
    batches = verify._batches(pairs, 2)
    assert [p for b in batches for p in b] == pairs
    assert max(map(len, batches)) <= verify.VERIFY_BATCH
    assert sum(map(len, batches[-3:])) <= 24
    assert len(verify._batches(list(range(20)), 2)) == 3
