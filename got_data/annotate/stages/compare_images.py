"""Image check of an edit input: an edit whose image does not change teaches nothing and would get
a made-up change in its GoT, so byte-identical consecutive images are rejected (CPU only). It compares
the input's images in order, so it also serves a combined multi-turn input before it is split."""

from __future__ import annotations

from pydantic import Field

from got_data.annotate.stage import Stage, StageOptions, StageReject


class CompareImages(Stage):
    name = "compare_images"
    reads = ("images",)

    class Options(StageOptions):
        reject_identical: bool = Field(True, description="reject an edit whose image is byte-identical to the one before it"
                                                     " (`identical_images`)")

    options: Options

    async def run(self, work, models) -> None:
        if not self.options.reject_identical:
            return
        roles = list(work.images)
        for earlier, later in zip(roles, roles[1:]):
            before, after = work.images[earlier].prepared, work.images[later].prepared
            if before.original_sha256 == after.original_sha256 or before.sha256 == after.sha256:
                raise StageReject(
                    self.name, "identical_images",
                    f"the {later} image is identical to the {earlier} image: an edit needs a visible change",
                )
