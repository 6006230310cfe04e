"""The stage contract: stages register themselves, their options are checked when a spec loads, the
reads/writes chain is checked before anything runs and audited while stages run, specs extend specs,
`got-data spec check` takes stages and prompts of a user's own. No Ray, no model."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import got_data.annotate.stages as builtin_stages
from got_data.annotate.spec_check import effective_spec
from got_data.annotate.stage import STAGE_CLASSES, Stage, stage_classes
from got_data.annotate.stage_io import WorkAudit
from got_data.annotate.work_items import WORK_KINDS
from got_data.cli import app
from got_data.errors import SpecError, StageContractError
from got_data.spec import PipelineSpec, load_spec
from got_data.spec_docs import CONFIG_MD, with_tables
from got_data.world.scene import IMAGE_SIZES

SPECS_BEFORE = Path(__file__).resolve().parents[1] / "data" / "specs_before"
BUNDLED = [f"{kind}{size}.yaml" for kind in ("t2i", "edit", "multiturn") for size in ("", "-tiny", "-world")]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_specs_load_to_the_values_they_had_before_overlays(name):
    # tests/data/specs_before/ holds the specs as they were written in full, before `extends` and the
    # option defaults moved into the stages' Options models; what runs must not have changed.
    raw = yaml.safe_load((SPECS_BEFORE / name).read_text())
    for stage in raw["stages"]:
        stage.pop("output_schema", None)
    assert effective_spec(load_spec(name)) == effective_spec(PipelineSpec.model_validate(raw))


def test_every_builtin_stage_module_holds_one_registered_stage_class():
    stage_classes()
    for module_info in pkgutil.iter_modules(builtin_stages.__path__):
        module = importlib.import_module(f"{builtin_stages.__name__}.{module_info.name}")
        defined = [v for v in vars(module).values()
                   if isinstance(v, type) and issubclass(v, Stage) and v.__module__ == module.__name__]
        assert len(defined) == 1, (module.__name__, defined)
        assert STAGE_CLASSES[defined[0].name] is defined[0]


def write_spec(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_misspelt_option_names_the_key_the_stage_and_the_keys_it_takes(tmp_path):
    path = write_spec(tmp_path, "bad.yaml", """\
        extends: t2i.yaml
        stages:
          - name: assemble
            options: {merge_io: 0.5}
        """)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "stage 'assemble'" in message and "'merge_io'" in message and "merge_iou" in message
    assert "\n" not in message


def test_an_option_of_the_wrong_type_is_refused(tmp_path):
    path = write_spec(tmp_path, "bad.yaml", """\
        extends: edit.yaml
        stages:
          - name: reinstruct
            options: {count: many}
        """)
    with pytest.raises(SpecError, match=r"stage 'reinstruct': option 'count'"):
        load_spec(path)


@pytest.mark.parametrize("value", [0, -512, "large", 100_000])
def test_spec_check_refuses_a_minimum_image_side_out_of_range(tmp_path, value):
    path = write_spec(tmp_path, "bad.yaml", f"extends: multiturn.yaml\nmin_image_side: {value}\n")
    result = CliRunner().invoke(app, ["spec", "check", str(path)])
    assert result.exit_code == 1 and "min_image_side" in result.output, result.output


def test_every_pipeline_takes_a_minimum_image_side_the_real_specs_at_512():
    for kind in ("t2i", "edit", "multiturn"):
        assert load_spec(f"{kind}.yaml").min_image_side == 512
        assert load_spec(f"{kind}-world.yaml").min_image_side <= min(map(min, IMAGE_SIZES))
        assert load_spec(f"{kind}-tiny.yaml").min_image_side == 8


def test_a_retired_key_says_what_to_write_instead():
    with pytest.raises(SpecError, match=r"stage 'recaption': 'output_schema' is no longer a spec key; delete the line"):
        load_spec(SPECS_BEFORE / "t2i.yaml")


def test_a_stage_reading_what_nothing_wrote_is_refused(tmp_path):
    base = yaml.safe_load((SPECS_BEFORE / "t2i.yaml").read_text())
    for stage in base["stages"]:
        stage.pop("output_schema", None)
    base["stages"] = [s for s in base["stages"] if s["name"] != "extract_entities"]
    path = tmp_path / "no-entities.yaml"
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(SpecError, match=r"stage 'ground' reads 'entities', which neither the input nor an earlier stage"):
        load_spec(path)
    base["stages"] = base["stages"][:1]
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(SpecError, match="no stage writes the record"):
        load_spec(path)


def test_repeated_stage_names_are_refused():
    spec = load_spec("t2i.yaml")
    spec.stages.append(spec.stages[-1])
    with pytest.raises(SpecError, match="stage names repeat"):
        effective_spec(spec)


def test_a_role_that_contradicts_the_stage_class_is_refused(tmp_path):
    path = write_spec(tmp_path, "bad.yaml", """\
        extends: t2i.yaml
        stages:
          - name: ground
            role: llm
        """)
    with pytest.raises(SpecError, match="stage 'ground' calls the 'vlm' model, the spec says 'llm'"):
        load_spec(path)


def test_overlays_merge_maps_match_stages_by_name_and_replace_other_values(tmp_path):
    write_spec(tmp_path, "middle.yaml", """\
        extends: t2i.yaml
        version: "2"
        models:
          vlm: {max_pixels: 50176}
        stages:
          - name: ground
            sampling: {max_tokens: 16}
        """)
    path = write_spec(tmp_path, "top.yaml", """\
        extends: middle.yaml
        stages:
          - name: ground
            sampling: {temperature: 0.5}
          - name: recaption
            options: {max_prompt_chars: 99}
        """)
    spec = load_spec(path)
    plain = load_spec("t2i.yaml")
    assert spec.version == "2" and [s.name for s in spec.stages] == [s.name for s in plain.stages]
    assert spec.models["vlm"].max_pixels == 50176 and spec.models["vlm"].min_pixels == plain.models["vlm"].min_pixels
    ground = spec.stages[2]
    assert (ground.sampling.max_tokens, ground.sampling.temperature, ground.prompt) == (16, 0.5, "ground.txt")
    assert spec.stages[0].options == {"max_prompt_chars": 99}
    unknown = write_spec(tmp_path, "unknown.yaml", "extends: t2i.yaml\nstages:\n  - name: reinstruct\n")
    with pytest.raises(SpecError, match="stage 'reinstruct' is not a stage of the spec it extends"):
        load_spec(unknown)


class Peek(Stage):
    """Reads the caption without declaring it, then writes what it declares."""

    name = "test_peek_caption"
    reads = ("description",)
    writes = ("prompt",)

    async def run(self, work, models) -> None:
        work.prompt = work.caption or work.description


class CountRegions(Stage):
    """Reads a derived property (`regions` reads `groundings`) with its field declared."""

    name = "test_count_regions"
    reads = ("steps.groundings",)
    writes = ("dropped",)

    async def run(self, work, models) -> None:
        for step in work.steps:
            work.dropped.append((str(len(step.regions)), "counted"))


def run_audited(stage_cls, work, monkeypatch):
    monkeypatch.setenv("GOT_DATA_AUDIT_STAGE_IO", "1")
    stage = stage_cls.__new__(stage_cls)
    asyncio.run(stage.run(work, None))


def test_the_audit_catches_an_undeclared_read_and_allows_declared_derived_ones(monkeypatch):
    from types import SimpleNamespace

    t2i = WORK_KINDS["t2i"]
    work = t2i.__new__(t2i)
    work.item, work.description, work.prompt, work.dropped = SimpleNamespace(caption="a caption"), "a red kite", "", []
    with pytest.raises(StageContractError, match="stage 'test_peek_caption' touched fields it does not declare: read caption"):
        run_audited(Peek, work, monkeypatch)
    monkeypatch.setenv("GOT_DATA_AUDIT_STAGE_IO", "0")
    asyncio.run(Peek.__new__(Peek).run(work, None))  # auditing off: nothing is checked

    edit = WORK_KINDS["edit"]
    audit = WorkAudit.__new__(WorkAudit)
    audit.work, audit.kind, audit.read, audit.written = None, edit, {"steps", "steps.regions", "dropped"}, set()
    assert audit.undeclared(CountRegions) == []
    assert audit.undeclared(Peek) == ["wrote dropped", "read steps.groundings"]


def test_config_md_stage_options_match_the_stage_models():
    text = CONFIG_MD.read_text(encoding="utf-8")
    assert text == with_tables(text), "docs/CONFIG.md drifted: run `python -m got_data.spec_docs --write`"


USER_STAGE = '''
from pydantic import Field

from got_data.annotate.ask_json import ask_json
from got_data.annotate.answer_schemas import RecaptionAnswer, bounded_schema
from got_data.annotate.stage import Stage, StageOptions


class PlainCaption(Stage):
    name = "plain_caption"
    role = "vlm"
    reads = ("model_image",)
    writes = ("prompt", "description")

    class Options(StageOptions):
        max_chars: int = Field(100, gt=0, description="JSON maxLength of each text")

    async def run(self, work, models):
        answer = await ask_json(self, work, models, RecaptionAnswer, values={}, images=[work.model_image],
                                json_schema=bounded_schema(RecaptionAnswer, {"prompt": self.options.max_chars}))
        work.prompt, work.description = answer.prompt, answer.description
'''


def test_spec_check_takes_user_stages_and_prompts_beside_the_spec(tmp_path, monkeypatch):
    (tmp_path / "user_stages_for_check.py").write_text(USER_STAGE)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "plain_caption.txt").write_text("[user]\nDescribe the picture.\n")
    spec = write_spec(tmp_path, "mine.yaml", """\
        name: mine
        version: "1"
        record_kind: t2i
        stages:
          - name: plain_caption
            options: {max_chars: 50}
          - name: extract_entities
          - name: ground
          - name: assemble
        """)
    runner = CliRunner()
    result = runner.invoke(app, ["spec", "check", str(spec), "--stages-module", "user_stages_for_check"])
    assert result.exit_code == 0, result.output
    assert "plain_caption -> extract_entities -> ground -> assemble" in result.output
    loaded = load_spec(spec, stage_modules=["user_stages_for_check"])
    assert loaded.prompt_dirs[0] == tmp_path / "prompts"

    (tmp_path / "prompts" / "plain_caption.txt").unlink()
    result = runner.invoke(app, ["spec", "check", str(spec), "--stages-module", "user_stages_for_check"])
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and "plain_caption.txt" in result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1
    result = runner.invoke(app, ["spec", "check", str(spec), "--stages-module", "no_such_stage_module"])
    assert result.exit_code == 1 and "stage module 'no_such_stage_module' cannot be imported" in result.output


def test_a_prompt_without_the_section_the_options_ask_for_fails_when_the_spec_loads(tmp_path):
    spec = write_spec(tmp_path, "per-image.yaml", """\
        extends: t2i.yaml
        stages:
          - name: ground
            options: {requests: per_image}
        """)
    assert next(s for s in load_spec(spec).stages if s.name == "ground").options == {"requests": "per_image"}
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "ground.txt").write_text("[user]\nFind this: $phrase\n")  # a prompt of one's own, older
    with pytest.raises(SpecError, match=r"stage 'ground': prompt ground.txt has no \[user_all_phrases\] section"):
        load_spec(spec)
