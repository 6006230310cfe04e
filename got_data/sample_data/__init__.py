"""Small public-domain / CC0 photographs bundled for the tests (see LICENSES.md); the demo uses the
known-answer world (`got_data/world/`).

Bundled rather than downloaded because nothing in this project fetches data at run or test time.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from got_data.errors import InputError


def sample_images_dir() -> Path:
    """The folder holding the sample images and their `.txt` captions, usable as a FolderSource root."""
    folder = files(__name__)
    if not isinstance(folder, Path):
        raise InputError(
            f"the sample images are inside an archive ({folder}); install got-data unzipped to use them"
        )
    return folder


def sample_edit_pairs() -> Path:
    """The bundled single-turn edit pairs: a Parquet manifest (source, target, instruction, edit_type)
    with the images embedded, so the sample folder itself stays a plain folder of T2I images."""
    return sample_images_dir() / "edit_pairs.parquet"


def sample_edit_sequences() -> Path:
    """The bundled multi-turn edit sequence(s): a Parquet manifest (source, turns) with embedded images."""
    return sample_images_dir() / "multiturn_edits.parquet"
