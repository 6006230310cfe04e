"""One module per stage; `STAGES` maps the names used in pipeline specs to their classes."""

from got_data.annotate.stages.assemble import AssembleT2I
from got_data.annotate.stages.extract_entities import ExtractEntities
from got_data.annotate.stages.ground import Ground
from got_data.annotate.stages.recaption import Recaption

STAGES = {cls.name: cls for cls in (Recaption, ExtractEntities, Ground, AssembleT2I)}

__all__ = ["STAGES", "AssembleT2I", "ExtractEntities", "Ground", "Recaption"]
