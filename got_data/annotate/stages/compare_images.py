"""Image check of an edit input: an edit whose image does not change teaches nothing and would get
a made-up change in its GoT, so byte-identical consecutive images are rejected (CPU only)."""

from __future__ import annotations

from got_data.annotate.stage import Stage, StageReject


class CompareImages(Stage):
    name = "compare_images"
    reads = ("steps",)

    async def run(self, work, models) -> None:
        if not self.option("reject_identical", True):
            return
        roles = list(work.images)
        for n, step in enumerate(work.steps):
            before, after = step.before.prepared, step.after.prepared
            if before.original_sha256 == after.original_sha256 or before.sha256 == after.sha256:
                raise StageReject(
                    self.name, "identical_images",
                    f"the {roles[n + 1]} image is identical to the {roles[n]} image: an edit needs a visible change",
                )
