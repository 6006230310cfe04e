"""What a reject row's `detail` may say: it is published beside the shards (rejects.parquet).

Details are written for the person who runs the job, but whoever receives the dataset reads them
too. So, whatever a stage or source put there:
- absolute paths are replaced by `<path>` (a model error, an OS error or a library message can
  name a checkpoint folder or a home directory; sources already name inputs relative to their root);
- model-written text is kept only as a cleaned excerpt: control tokens and control characters
  removed, whitespace folded (it is the evidence of why a stage rejected, and it is the model's
  text about the input, not host data);
- the whole detail is cut to MAX_DETAIL_CHARS.
"""

from __future__ import annotations

import re

from got_data.annotate.model_text import clean_model_text

MAX_DETAIL_CHARS = 500
# A local path: a file:// URI, an absolute path (a "/" not inside a word, a URL such as "s3://x/y"
# or a relative path), or a home-relative one ("~/models/x", "~alice/x").
_LOCAL_PATH = re.compile(
    r"(?:\bfile://|(?<![\w.:/~-])/(?=[\w.~-])|(?<![\w./-])~[\w.-]*/)[^\s'\"`,:;()<>\[\]{}]*", re.IGNORECASE
)


def public_detail(detail: str) -> str:
    """`detail` as a published rejects table may carry it: no host paths, no control tokens, bounded."""
    text = clean_model_text(_LOCAL_PATH.sub("<path>", detail))
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1].rstrip() + "…"
