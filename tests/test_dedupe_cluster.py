"""Clustering and the representative rule: plain functions on plain data."""

from datetime import datetime, timedelta
from types import SimpleNamespace

from curate.dedupe.cluster import Candidate, Edge, cluster_key, clusters, crops, representative, unmerged

T0 = datetime(2026, 1, 1)


def test_union_of_pairs_keyed_by_smallest_id():
    roots = clusters([1, 2, 3, 4, 5], [Edge(2, 3, "hash", 0.95), Edge(3, 5, "pixel")], set())
    assert roots == {1: 1, 2: 2, 3: 2, 4: 4, 5: 2}
    assert cluster_key(2) == "img2"


def test_split_blocks_the_chain_and_merge_always_holds():
    edges = [Edge(1, 2, "hash", 0.99), Edge(2, 3, "hash", 0.91), Edge(3, 4, "merge")]
    roots = clusters([1, 2, 3, 4], edges, {(1, 3)})
    assert roots[1] == roots[2]
    assert roots[3] == roots[4] != roots[1]


def test_result_does_not_depend_on_edge_order():
    edges = [Edge(1, 2, "hash", 0.92), Edge(2, 3, "hash", 0.99), Edge(1, 3, "hash", 0.95)]
    a = clusters([1, 2, 3], edges, {(1, 2)})
    b = clusters([1, 2, 3], list(reversed(edges)), {(1, 2)})
    assert a == b


def test_representative_rule_resolution_then_source_then_earliest():
    web_big = Candidate(1, 2000, 1500, 2, T0)
    clinic_small = Candidate(2, 800, 600, 0, T0)
    assert representative([clinic_small, web_big]).image_id == 1  # resolution first
    clinic_same = Candidate(3, 2000, 1500, 0, T0 + timedelta(days=1))
    assert representative([web_big, clinic_same]).image_id == 3  # then clinic > public > web
    earlier = Candidate(4, 2000, 1500, 0, T0)
    assert representative([clinic_same, earlier]).image_id == 4  # then earliest
    low = Candidate(5, 9000, 9000, 0, T0, low_res=True)
    assert representative([low, clinic_small]).image_id == 2  # low-res never wins over a usable one


def test_an_image_in_labelling_stays_representative():
    labelled_small = Candidate(1, 800, 600, 0, T0)
    sharper_copy = Candidate(2, 2000, 1500, 0, T0 + timedelta(days=30))
    assert representative([labelled_small, sharper_copy]).image_id == 2  # no labels: resolution first
    assert representative([labelled_small, sharper_copy], labelled={1}).image_id == 1
    assert representative([sharper_copy, labelled_small], labelled={1}).image_id == 1  # order-free
    # among several labelled, a final consensus first, then the plain rule
    other = Candidate(3, 1000, 800, 2, T0)
    assert representative([labelled_small, sharper_copy, other], labelled={1, 3}).image_id == 3
    assert representative([labelled_small, sharper_copy, other], labelled={1, 3}, final={1}).image_id == 1
    # a labelled image stays even when low-res: the cluster is labelled, its copies are not labelable
    low = Candidate(4, 90, 60, 0, T0, low_res=True)
    assert representative([low, sharper_copy], labelled={4}).image_id == 4


def test_two_groups_are_not_joined_by_one_link_alone():
    """Two groups of several pictures each, every pair across them only tolerated ("review" or
    "untested": no evidence either way) but one verified: that one link is not enough to join
    them, and it goes to the steward; a second verified link across them is."""
    inside = [Edge(1, 2, "hash", 0.99), Edge(1, 3, "hash", 0.99), Edge(4, 5, "hash", 0.99), Edge(4, 6, "hash", 0.99)]
    across = [(a, b) for a in (1, 2, 3) for b in (4, 5, 6)]
    tolerated = [(2, 3), (5, 6), *across]
    one = [*inside, Edge(3, 4, "hash", 0.97)]
    roots = clusters([1, 2, 3, 4, 5, 6], one, set(), tolerated)
    assert roots == {1: 1, 2: 1, 3: 1, 4: 4, 5: 4, 6: 4}
    assert [(e.a, e.b) for e in unmerged(one, roots, set())] == [(3, 4)]
    two = [*one, Edge(2, 5, "hash", 0.96)]
    assert set(clusters([1, 2, 3, 4, 5, 6], two, set(), tolerated).values()) == {1}
    # a single picture still joins a group on one link (how a copy of a smooth photo joins it)
    assert set(
        clusters([1, 2, 3, 4], [*inside[:2], Edge(3, 4, "hash", 0.97)], set(), [(2, 3), (1, 4), (2, 4)]).values()
    ) == {1}


def test_a_member_that_alone_keeps_out_more_copies_is_swapped_for_them():
    """A photo (1) and its hue-shifted copy (6) join its zoomed copy (2) first, on the strongest pairs; three
    turned copies (3-5) are "same" as the photo, the hue copy and each other, but not as the zoomed one.
    Greedy complete linkage kept them out as a second cluster of the same photo; the zoomed copy now leaves
    instead, and its pairs go to review."""
    edges = [Edge(1, 2, "hash", 0.99), Edge(2, 6, "hash", 0.99), Edge(1, 6, "hash", 0.99)]
    edges += [Edge(a, x, "hash", 0.95) for a in (1, 6) for x in (3, 4, 5)]
    edges += [Edge(3, 4, "hash", 0.9), Edge(3, 5, "hash", 0.9), Edge(4, 5, "hash", 0.9)]
    roots = clusters([1, 2, 3, 4, 5, 6], edges, set())
    assert roots == {1: 1, 2: 2, 3: 1, 4: 1, 5: 1, 6: 1}
    assert [(e.a, e.b) for e in unmerged(edges, roots, set())] == [(1, 2), (2, 6)]
    assert clusters([1, 2, 3, 4, 5, 6], list(reversed(edges)), set()) == roots


def test_a_member_is_not_swapped_for_as_few_or_for_pairs_only_tolerated():
    edges = [Edge(1, 2, "hash", 0.99), Edge(1, 3, "hash", 0.95)]
    assert clusters([1, 2, 3], edges, set()) == {1: 1, 2: 1, 3: 3}  # one for one: the stronger pair stays
    # two different photos under one stamp (3, 4): "same" as the photo (1) and a copy (2), but one of them only
    # "review" with that copy; they do not take the place of the photo's other copy (0)
    core = [Edge(0, 1, "hash", 0.99), Edge(0, 2, "hash", 0.99), Edge(1, 2, "hash", 0.99)]
    edges = [
        *core,
        Edge(1, 3, "hash", 0.95),
        Edge(2, 3, "hash", 0.95),
        Edge(1, 4, "hash", 0.95),
        Edge(3, 4, "hash", 0.9),
    ]
    assert clusters([0, 1, 2, 3, 4], edges, set(), tolerated=[(2, 4)]) == {0: 0, 1: 0, 2: 0, 3: 3, 4: 3}
    assert clusters([0, 1, 2, 3, 4], [*edges, Edge(2, 4, "hash", 0.9)], set())[4] == 1  # all "same": swapped
    # the steward's split holds against a swap
    edges = [*core, *(Edge(a, x, "hash", 0.95) for a in (1, 2) for x in (3, 4)), Edge(3, 4, "hash", 0.9)]
    assert clusters([0, 1, 2, 3, 4], edges, {(1, 4)}) == {0: 0, 1: 0, 2: 0, 3: 3, 4: 3}
    assert clusters([0, 1, 2, 3, 4], edges, set())[4] == 1
    # a group of two: which of them the others belong with is no clearer than before, nothing is swapped
    edges = [Edge(1, 2, "hash", 0.99), Edge(2, 3, "hash", 0.95), Edge(2, 4, "hash", 0.95), Edge(3, 4, "hash", 0.9)]
    assert clusters([1, 2, 3, 4], edges, set()) == {1: 1, 2: 1, 3: 3, 4: 3}


def test_the_swap_does_not_depend_on_the_order_images_came_in():
    """A unit of pixel twins (1, 5) is named by whichever twin the disjoint set kept; the swap looks at groups
    by their smallest image, so the clusters are the same whatever order the images are listed in."""
    edges = [Edge(1, 5, "pixel"), Edge(2, 3, "hash", 0.99), Edge(3, 6, "hash", 0.99), Edge(2, 6, "hash", 0.99)]
    edges += [Edge(1, 3, "hash", 0.9), Edge(1, 6, "hash", 0.9), Edge(3, 4, "hash", 0.9), Edge(4, 6, "hash", 0.9)]
    roots = clusters([1, 2, 3, 4, 5, 6], edges, set(), tolerated=[(1, 4)])
    assert roots == {1: 1, 2: 2, 3: 1, 4: 4, 5: 1, 6: 1}  # the twins (two pictures) take 2's place
    assert clusters([5, 1, 2, 3, 4, 6], edges, set(), tolerated=[(1, 4)]) == roots


def test_the_larger_group_kept_out_is_tried_first():
    """Two groups kept out by one member (2): a pair (7, 8) and a single picture that does not agree with the
    pair. Whatever the single picture's id, the pair is tried first and swapped in."""
    for single in (4, 9):
        edges = [Edge(2, 3, "hash", 0.99), Edge(3, 6, "hash", 0.99), Edge(2, 6, "hash", 0.99), Edge(7, 8, "hash", 0.98)]
        edges += [Edge(x, y, "hash", 0.9) for x in (single, 7, 8) for y in (3, 6)]
        roots = clusters([2, 3, 6, 7, 8, single], edges, set(), tolerated=[(single, 7), (single, 8)])
        assert roots[7] == roots[8] == roots[3] == roots[6] != roots[2], (single, roots)
        assert roots[single] != roots[3]


def test_a_member_is_not_swapped_for_one_picture():
    """One picture for one (3 kept out by 2 alone): nothing gained, the group that formed first stays."""
    edges = [Edge(1, 2, "hash", 0.99), Edge(2, 6, "hash", 0.99), Edge(1, 6, "hash", 0.99)]
    edges += [Edge(3, 1, "hash", 0.9), Edge(3, 6, "hash", 0.9)]
    assert clusters([1, 2, 3, 6], edges, set()) == {1: 1, 2: 1, 3: 3, 6: 1}


def test_representative_is_not_a_copy_that_lost_its_colour_or_had_colour_drawn_on():
    """`curate.dedupe.fidelity`'s measures, compared inside the cluster: a grey copy loses to a member with
    colour even with more pixels, a copy with a ring or sticker to one with less drawn colour; a grey photo
    whose one copy has colour (a sticker, a frame's seam) stays the photo; unknown measures (a catalogue
    hashed before them) leave the plain rule."""
    photo = Candidate(9, 800, 600, 1, T0, colour=2.4, drawn=0.0)
    big_grey_print = Candidate(1, 2000, 1500, 1, T0, colour=0.0, drawn=0.0)
    assert representative([big_grey_print, photo]).image_id == 9
    ringed = Candidate(2, 800, 600, 1, T0, colour=6.2, drawn=0.004)
    assert representative([ringed, photo]).image_id == 9  # the ring arrived first
    assert representative([ringed, photo], labelled={2}).image_id == 2  # labels already paid for stay
    grey_photo = Candidate(3, 512, 512, 1, T0, colour=0.0, drawn=0.0)
    grey_copies = [Candidate(k, 400, 400, 1, T0, colour=0.0, drawn=0.0) for k in (4, 5)]
    seamed = Candidate(6, 512, 512, 1, T0 + timedelta(days=1), colour=6.3, drawn=0.0)
    assert representative([seamed, *grey_copies, grey_photo]).image_id == 3  # the plain rule: earliest
    stickered = Candidate(8, 512, 512, 1, T0 - timedelta(days=1), colour=11.2, drawn=0.02)
    assert representative([stickered, grey_photo]).image_id == 3
    unknown = [Candidate(10, 800, 600, 1, T0), Candidate(11, 800, 600, 1, T0 - timedelta(days=1))]
    assert representative([*unknown, photo]).image_id == 11


def test_the_stewards_keep_outranks_every_rule_and_the_later_keep_wins():
    photo = Candidate(1, 2000, 1500, 0, T0, colour=2.0, drawn=0.0)
    enlarged_crop = Candidate(2, 4000, 3000, 0, T0, colour=2.0, drawn=0.0)
    assert representative([photo, enlarged_crop]).image_id == 2  # the rule sees pixels
    assert representative([photo, enlarged_crop], kept={1: T0}).image_id == 1
    assert representative([photo, enlarged_crop], labelled={2}, final={2}, kept={1: T0}).image_id == 1
    later = T0 + timedelta(hours=1)
    assert representative([photo, enlarged_crop], kept={1: T0, 2: later}).image_id == 2
    assert representative([photo, enlarged_crop], kept={3: later}).image_id == 2  # a keep elsewhere changes nothing


def test_a_file_compressed_again_does_not_represent_its_photo_of_the_same_format():
    """Of members with as many pixels, a JPEG with under 1/1.8 of the bytes per pixel of another JPEG's was
    compressed again; other formats are not compared with it (a WebP is smaller than its JPEG re-save)."""
    photo = Candidate(9, 800, 600, 1, T0 + timedelta(days=1), size_bytes=96_000, format="JPEG")
    heavy = Candidate(1, 800, 600, 1, T0, size_bytes=40_000, format="JPEG")
    assert representative([heavy, photo]).image_id == 9
    watermarked = Candidate(2, 800, 600, 1, T0, size_bytes=130_000, format="JPEG")  # lettering: more bytes
    assert representative([watermarked, photo]).image_id == 2  # not told apart: earliest, as before
    webp = Candidate(3, 800, 600, 1, T0, size_bytes=30_000, format="WEBP")
    assert representative([webp, photo]).image_id == 3
    small = Candidate(4, 400, 300, 1, T0, size_bytes=90_000, format="JPEG")
    assert representative([small, heavy]).image_id == 1  # fewer pixels still lose first
    clinic = Candidate(5, 800, 600, 0, T0 + timedelta(days=2), size_bytes=40_000, format="JPEG")
    assert representative([photo, clinic]).image_id == 5  # a clinic's photo at quality 70 is still the source


def test_a_vivid_photo_is_not_drawn_on_against_its_own_thumbnail():
    """Shrinking a vivid photo blends its pure colours away (a flower tile: 0.28 % of the photo, 0.05 % of its
    108 px copy): the photo is compared with members of as many pixels or more, and stays the representative;
    a ring on a copy of the same size is still told apart."""
    photo = Candidate(9, 180, 180, 1, T0 + timedelta(days=1), colour=23.6, drawn=0.0028)
    thumbnail = Candidate(1, 108, 108, 1, T0, colour=23.4, drawn=0.0005)
    turned = Candidate(2, 180, 180, 1, T0 + timedelta(days=2), colour=23.9, drawn=0.0019)
    assert representative([thumbnail, photo, turned]).image_id == 9
    ringed = Candidate(3, 180, 180, 1, T0, colour=24.0, drawn=0.012)
    assert representative([thumbnail, photo, turned, ringed]).image_id == 9


def test_a_framed_copy_enlarged_does_not_represent_its_photo():
    """A framed or padded member (content box under 95 % of its picture, cut on two opposite sides) passes over
    to an unframed one with at least a quarter of its pixels inside the box; with more than four times them, it
    still represents. A box cut on one side only is the photo's own plain edge: pixels decide, as before."""
    photo = Candidate(9, 200, 150, 1, T0 + timedelta(days=1))
    fitted = Candidate(1, 400, 300, 1, T0, content=0.64, framed=True)  # 76,800 px in the box: 2.6 times the photo's
    assert representative([fitted, photo]).image_id == 9
    figure = Candidate(2, 1000, 800, 1, T0, content=0.8, framed=True)  # 640,000: over 4 times
    assert representative([figure, photo]).image_id == 2
    upscaled = Candidate(3, 400, 300, 1, T0)  # unframed and larger: resolution decides, as before
    assert representative([fitted, photo, upscaled]).image_id == 3
    framed_only = [fitted, Candidate(4, 300, 200, 1, T0, content=0.7, framed=True)]
    assert representative(framed_only).image_id == 1  # no unframed member: as before
    plain_edge = Candidate(5, 400, 300, 1, T0 + timedelta(days=2), content=0.9)  # a flat strip along one side
    crop = Candidate(6, 300, 240, 1, T0)
    assert representative([crop, plain_edge]).image_id == 5


def test_a_copy_whose_colours_changed_does_not_represent_when_two_members_agree_on_them():
    """A colour cast or an app's filter moves a picture's mean chroma 16-44 units; a crop, a re-encode or
    sharpening under 5. A member over 12 from every member that agrees with another (within 4) is passed over;
    two members alone cannot tell which one was changed."""
    cast = Candidate(1, 800, 600, 1, T0, tint=(31.0, -22.0))
    photo = Candidate(9, 800, 600, 1, T0 + timedelta(days=1), tint=(12.0, -8.0))
    sharpened = Candidate(5, 800, 600, 1, T0 + timedelta(days=2), tint=(12.3, -8.1))
    assert representative([cast, photo, sharpened]).image_id == 9
    assert representative([cast, photo]).image_id == 1  # no third: earliest, as before
    unknown = Candidate(2, 800, 600, 1, T0)  # catalogued before tints were measured: never passed over for it
    assert representative([unknown, photo, sharpened]).image_id == 2
    coloured = Candidate(9, 800, 600, 1, T0 + timedelta(days=1), colour=20.0, tint=(12.0, -8.0))
    greys = [Candidate(k, 800, 600, 1, T0 + timedelta(days=2), colour=0.0, tint=(0.0, 0.0)) for k in (3, 4)]
    assert representative([*greys, coloured]).image_id == 9  # two grey prints agree on no colour


def test_a_crop_does_not_represent_beside_the_photo_it_was_cut_from():
    """A site serving a photo enlarged and cropped has more pixels of less of it: the photo, which shows all the crop
    shows, represents. A crop with over four times the photo's pixels still does; two crops of one photo that each
    show part of the other are no crop of each other."""
    photo = Candidate(1, 400, 300, 2, T0)
    crop = Candidate(2, 700, 520, 2, T0 - timedelta(days=1))  # arrived first, 3 times the pixels
    parts = crops([(1, 2, 1.0, 0.85)])  # the photo shows all of the crop's box, the crop 85 % of the photo's
    assert parts == {2: {1}}
    assert representative([photo, crop]).image_id == 2  # pixels alone: the crop
    assert representative([photo, crop], parts=parts).image_id == 1
    huge = Candidate(3, 1400, 1040, 2, T0)  # over four times the photo's pixels
    assert representative([photo, huge], parts=crops([(1, 3, 1.0, 0.85)])).image_id == 3
    assert crops([(1, 2, 0.9, 0.9), (1, 3, 0.97, 1.0), (2, 3, None, None)]) == {}  # partial both ways; too little cut


def test_what_each_picture_shows_is_stored_in_the_pairs_own_order():
    """A pair is looked at in its pictures' digest order (`Verifier.swapped`): what the look says a shows of b is,
    stored for the pair (a < b), what b shows of a."""
    from curate.dedupe import verify
    from curate.dedupe.pairs import _pair

    v = verify.Verdict(verify.SAME, "same", verify.Geometry(inliers=40), shows=(0.8, 1.0))
    looked = _pair(v, 1, 2, 0.9, None, SimpleNamespace(swapped=lambda a, b: False))
    swapped = _pair(v, 1, 2, 0.9, None, SimpleNamespace(swapped=lambda a, b: (a, b) == (1, 2)))
    assert (looked.a_shows, looked.b_shows) == (0.8, 1.0) and crops([(1, 2, 0.8, 1.0)]) == {1: {2}}
    assert (swapped.a_shows, swapped.b_shows) == (1.0, 0.8) and crops([(1, 2, 1.0, 0.8)]) == {2: {1}}
