"""One module per stage; `STAGES` maps the names used in pipeline specs to their classes."""

from got_data.annotate.stages.assemble import AssembleT2I
from got_data.annotate.stages.assemble_edit import AssembleEdit
from got_data.annotate.stages.compare_images import CompareImages
from got_data.annotate.stages.crop_describe import CropDescribe
from got_data.annotate.stages.describe import Describe
from got_data.annotate.stages.edit_parse import EditParse
from got_data.annotate.stages.extract_entities import ExtractEntities
from got_data.annotate.stages.ground import Ground
from got_data.annotate.stages.localize import Localize
from got_data.annotate.stages.recaption import Recaption
from got_data.annotate.stages.reinstruct import Reinstruct

STAGES = {
    cls.name: cls
    for cls in (
        Recaption, ExtractEntities, Ground, AssembleT2I,
        CompareImages, EditParse, Describe, Localize, CropDescribe, Reinstruct, AssembleEdit,
    )
}

__all__ = [
    "STAGES", "AssembleEdit", "AssembleT2I", "CompareImages", "CropDescribe", "Describe", "EditParse",
    "ExtractEntities", "Ground", "Localize", "Recaption", "Reinstruct",
]
