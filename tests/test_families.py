"""The model-family registry: names, model types, box conventions, and its string behaviour."""

import json

import pytest

from got_data.engines.config import PoolConfig
from got_data.engines.errors import PoolConfigError
from got_data.families import (
    QWEN2,
    QWEN2_VL,
    QWEN25_VL,
    Family,
    UnknownFamilyError,
    family,
    family_for_model_type,
)


def test_a_family_is_its_name_everywhere_a_string_goes():
    assert QWEN2_VL == "qwen2-vl" and f"{QWEN25_VL}" == "qwen2.5-vl" and str(QWEN2) == "qwen2"
    assert json.dumps({"family": QWEN25_VL}) == '{"family": "qwen2.5-vl"}'
    assert {"qwen2-vl": 1}[QWEN2_VL] == 1


def test_traits_and_lookups():
    assert [f.model_type for f in Family] == ["qwen2_vl", "qwen2_5_vl", "qwen2"]
    assert QWEN2_VL.vision and QWEN25_VL.vision and not QWEN2.vision
    assert (QWEN2_VL.box_coordinates, QWEN25_VL.box_coordinates, QWEN2.box_coordinates) == (
        "relative_1000", "absolute_resized", None)
    assert family_for_model_type("qwen2_5_vl") is QWEN25_VL
    with pytest.raises(UnknownFamilyError, match="expected one of"):
        family("llava")
    with pytest.raises(UnknownFamilyError, match="not served"):
        family_for_model_type("llama")


def test_pool_config_checks_the_family_through_the_registry(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')
    with pytest.raises(PoolConfigError, match="needs a vision family"):
        PoolConfig(role="vlm", model=str(tmp_path)).resolved()
    assert PoolConfig(role="llm", model=str(tmp_path)).resolved().family == "qwen2"
    with pytest.raises(PoolConfigError, match="unknown model family 'llava'"):
        PoolConfig(role="llm", model=str(tmp_path), family="llava").resolved()
