"""GoT text codec: structured grounding <-> text in Qwen2-VL's grounding convention.

A grounded object in GoT text reads
`<|object_ref_start|>a red kite<|object_ref_end|><|box_start|>(120,40),(380,310)<|box_end|>`;
one phrase may carry several boxes (one `<|box_start|>...<|box_end|>` each). Everything outside
those tokens is plain text. Any other `<|...|>` token (chat or vision control tokens) never belongs
in GoT text: the parser rejects it, and `strip_special_tokens` removes it from untrusted text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from got_data.errors import CodecError
from got_data.records.boxes import Box

REF_START = "<|object_ref_start|>"
REF_END = "<|object_ref_end|>"
BOX_START = "<|box_start|>"
BOX_END = "<|box_end|>"
GROUNDING_TOKENS = (REF_START, REF_END, BOX_START, BOX_END)

# Qwen's control tokens that must never appear in GoT text (chat turns, vision placeholders...).
CONTROL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|quad_start|>",
    "<|quad_end|>",
)
SPECIAL_TOKEN_RE = re.compile(r"<\|[A-Za-z0-9_]+\|>")
# NUL and the bidi embedding, override and isolate controls (U+202A-U+202E, U+2066-U+2069): they make
# the text a person is shown differ from what a model reads, so no record text a model reads holds them.
UNSAFE_CHARACTER_RE = re.compile("[\x00\u202a-\u202e\u2066-\u2069]")
_TOKEN_SPLIT_RE = re.compile(r"(<\|[A-Za-z0-9_]+\|>)")


@dataclass(frozen=True)
class Annotation:
    """A phrase of the plain text (by character span) and the boxes that ground it."""

    start: int
    end: int
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class GroundedRef:
    """A grounded phrase found in GoT text: `got_span` indexes the GoT text, `plain_span` the plain text."""

    phrase: str
    boxes: tuple[Box, ...]
    got_span: tuple[int, int]
    plain_span: tuple[int, int]


@dataclass
class ParsedGot:
    plain: str
    refs: list[GroundedRef] = field(default_factory=list)

    def boxes(self) -> list[Box]:
        return [box for ref in self.refs for box in ref.boxes]


def find_special_tokens(text: str) -> list[str]:
    """Every `<|...|>` token in text, grounding tokens included."""
    return SPECIAL_TOKEN_RE.findall(text)


def find_control_tokens(text: str) -> list[str]:
    """The `<|...|>` tokens in text that are not grounding tokens."""
    return [tok for tok in find_special_tokens(text) if tok not in GROUNDING_TOKENS]


def find_unsafe_characters(text: str) -> list[str]:
    """Every NUL or bidi control character in text (see UNSAFE_CHARACTER_RE)."""
    return UNSAFE_CHARACTER_RE.findall(text)


def strip_special_tokens(text: str) -> str:
    """Remove every `<|...|>` token, NUL and bidi control from untrusted or model-written text, so it
    cannot fake structure nor show a person something other than what a model reads.

    Repeats until nothing changes: removing `<|x|>` from `<|box_<|x|>start|>` joins a new token.
    """
    while True:
        stripped = SPECIAL_TOKEN_RE.sub("", UNSAFE_CHARACTER_RE.sub("", text))
        if stripped == text:
            return re.sub(r"[ \t]{2,}", " ", stripped)
        text = stripped


def render_got(plain: str, annotations: list[Annotation]) -> tuple[str, list[tuple[int, int]]]:
    """Insert grounding tokens into plain text.

    Returns the GoT text and, per annotation (in the order given), the span of its phrase in the GoT
    text. Annotations must not overlap; the plain text must hold no `<|...|>` token.
    """
    if find_special_tokens(plain):
        raise CodecError(f"plain text already contains special tokens: {find_special_tokens(plain)[:3]}")
    order = sorted(range(len(annotations)), key=lambda i: annotations[i].start)
    pieces: list[str] = []
    spans: dict[int, tuple[int, int]] = {}
    cursor = 0
    length = 0
    for i in order:
        ann = annotations[i]
        if not 0 <= ann.start < ann.end <= len(plain):
            raise CodecError(f"annotation span {ann.start}:{ann.end} is outside the text (length {len(plain)})")
        if ann.start < cursor:
            raise CodecError(f"annotations overlap at character {ann.start}")
        if not ann.boxes:
            raise CodecError(f"annotation {plain[ann.start:ann.end]!r} has no box")
        head = plain[cursor : ann.start] + REF_START
        length += len(head)
        phrase = plain[ann.start : ann.end]
        spans[i] = (length, length + len(phrase))
        tail = REF_END + "".join(BOX_START + box.render() + BOX_END for box in ann.boxes)
        pieces += [head, phrase, tail]
        length += len(phrase) + len(tail)
        cursor = ann.end
    pieces.append(plain[cursor:])
    return "".join(pieces), [spans[i] for i in range(len(annotations))]


def parse_got(text: str) -> ParsedGot:
    """Parse GoT text strictly: every ref has a phrase and at least one box, every box follows a ref,
    and no control token appears. Raises CodecError naming the first fault."""
    control = find_control_tokens(text)
    if control:
        raise CodecError(f"GoT text contains control token {control[0]}")
    parts = [p for p in _TOKEN_SPLIT_RE.split(text) if p]
    plain: list[str] = []
    plain_len = 0
    got_pos = 0
    refs: list[GroundedRef] = []
    i = 0

    def at(k: int) -> str | None:
        return parts[k] if k < len(parts) else None

    while i < len(parts):
        part = parts[i]
        if part == REF_START:
            phrase = at(i + 1)
            if phrase is None or phrase in GROUNDING_TOKENS or at(i + 2) != REF_END or not phrase.strip():
                raise CodecError(f"unclosed or empty object reference at character {got_pos}")
            got_span = (got_pos + len(REF_START), got_pos + len(REF_START) + len(phrase))
            plain_span = (plain_len, plain_len + len(phrase))
            plain.append(phrase)
            plain_len += len(phrase)
            got_pos = got_span[1] + len(REF_END)
            i += 3
            boxes: list[Box] = []
            while at(i) == BOX_START:
                inner = at(i + 1)
                if inner is None or inner in GROUNDING_TOKENS or at(i + 2) != BOX_END:
                    raise CodecError(f"unclosed or empty box at character {got_pos}")
                boxes.append(Box.parse(inner))
                got_pos += len(BOX_START) + len(inner) + len(BOX_END)
                i += 3
            if not boxes:
                raise CodecError(f"object reference {phrase!r} has no box")
            refs.append(GroundedRef(phrase=phrase, boxes=tuple(boxes), got_span=got_span, plain_span=plain_span))
        elif part in GROUNDING_TOKENS:
            raise CodecError(f"stray {part} at character {got_pos}")
        else:
            plain.append(part)
            plain_len += len(part)
            got_pos += len(part)
            i += 1
    return ParsedGot(plain="".join(plain), refs=refs)
