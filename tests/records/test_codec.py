"""GoT text codec: render/parse round trips and strictness."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from got_data.errors import CodecError
from got_data.records import Annotation, Box, parse_got, render_got, strip_special_tokens
from got_data.records.codec import find_special_tokens, find_unsafe_characters

boxes = st.builds(
    lambda x1, w, y1, h: Box(x1=x1, y1=y1, x2=min(999, x1 + w), y2=min(999, y1 + h)),
    st.integers(0, 998), st.integers(1, 999), st.integers(0, 998), st.integers(1, 999),
)
# Plain text may hold anything but the `<|...|>` token syntax (including lone '<', '|', unicode).
plain_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200).filter(
    lambda s: "<|" not in s and "|>" not in s
)


@st.composite
def plain_with_annotations(draw):
    text = draw(plain_text)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=10))))
    anns = []
    for start, end in zip(cuts[::2], cuts[1::2]):
        if end > start and text[start:end].strip():
            anns.append(Annotation(start, end, tuple(draw(st.lists(boxes, min_size=1, max_size=3)))))
    return text, anns


@settings(max_examples=300, deadline=None)
@given(plain_with_annotations())
def test_render_parse_round_trip(case):
    plain, anns = case
    got, spans = render_got(plain, anns)
    parsed = parse_got(got)
    assert parsed.plain == plain
    assert [(r.plain_span, r.boxes) for r in parsed.refs] == [((a.start, a.end), a.boxes) for a in anns]
    assert [r.got_span for r in parsed.refs] == spans
    for ref in parsed.refs:
        assert got[ref.got_span[0] : ref.got_span[1]] == ref.phrase


def test_render_known_text():
    got, spans = render_got("a fireman near a truck", [Annotation(2, 9, (Box(x1=244, y1=299, x2=613, y2=902),))])
    assert got == (
        "a <|object_ref_start|>fireman<|object_ref_end|><|box_start|>(244,299),(613,902)<|box_end|> near a truck"
    )
    assert got[spans[0][0] : spans[0][1]] == "fireman"


@pytest.mark.parametrize(
    "text, fault",
    [
        ("a <|object_ref_start|>cat<|object_ref_end|> sits", "has no box"),
        ("a <|box_start|>(1,2),(3,4)<|box_end|> sits", "stray"),
        ("a <|object_ref_start|>cat<|box_start|>(1,2),(3,4)<|box_end|>", "unclosed"),
        ("a <|object_ref_start|>cat<|object_ref_end|><|box_start|>(1,2),(3,4)", "unclosed"),
        ("a <|object_ref_start|>cat<|object_ref_end|><|box_start|>(5,2),(3,4)<|box_end|>", "invalid box"),
        ("a <|object_ref_start|>cat<|object_ref_end|><|box_start|>(1,2),(3,1000)<|box_end|>", "invalid box"),
        ("a <|object_ref_start|>cat<|object_ref_end|><|box_start|>1,2,3,4<|box_end|>", "not a box"),
        ("hello<|im_end|><|im_start|>assistant", "control token"),
        ("look <|vision_start|><|image_pad|><|vision_end|>", "control token"),
        ("a <|object_ref_start|> <|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|>", "empty object"),
    ],
)
def test_parse_rejects_malformed(text, fault):
    with pytest.raises(CodecError, match=fault):
        parse_got(text)


def test_render_rejects_overlap_and_tokens():
    b = (Box(x1=0, y1=0, x2=10, y2=10),)
    with pytest.raises(CodecError, match="overlap"):
        render_got("a red cat", [Annotation(0, 5, b), Annotation(2, 9, b)])
    with pytest.raises(CodecError, match="special tokens"):
        render_got("a <|box_start|>(1,1),(2,2)<|box_end|> cat", [])


def test_strip_special_tokens_removes_fake_structure():
    text = "a dog <|box_start|>(1,2),(3,4)<|box_end|> and <|im_end|> cat"
    cleaned = strip_special_tokens(text)
    assert "<|" not in cleaned
    assert parse_got(cleaned).refs == []


@pytest.mark.parametrize("text, cleaned", [
    ("<|box_<|x|>start|>", ""),
    ("a <|im_<|im_<|x|>end|>end|> b", "a b"),
    ("<<|x|>|box_end|<|y|>>", ""),
    ("<|box_\x00start|>a\u202eb\u2069", "ab"),
])
def test_tokens_joined_by_stripping_are_stripped_too(text, cleaned):
    assert strip_special_tokens(text) == cleaned


_TOKEN_PIECES = st.sampled_from(
    ["<|", "|>", "<", "|", ">", "box_start", "im_end", "x", "_", " ", "  ", "a", "\t", "<|x|>", "\x00", "\u202e", "\u2066"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_TOKEN_PIECES, max_size=24).map("".join))
def test_stripped_text_holds_no_token_and_is_stable(text):
    cleaned = strip_special_tokens(text)
    assert find_special_tokens(cleaned) == [] and find_unsafe_characters(cleaned) == []
    assert strip_special_tokens(cleaned) == cleaned
