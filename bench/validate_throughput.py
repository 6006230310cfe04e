"""Figures for `got-data validate`: throughput against a bare tarfile scan, and peak memory vs shard size.

Writes a small and a large shard (default 1 GiB) of T2I samples with real JPEGs, then measures each
tool in its own subprocess (so peak RSS is that tool's alone): samples/s of `validate_paths` and of a
bare `tarfile` stream that only reads every member, their ratio, and validate's peak RSS on both
shards. Peak memory must not grow with shard size: validate streams one sample at a time.

    .venv/bin/python bench/validate_throughput.py                 # 1 GiB shard
    .venv/bin/python bench/validate_throughput.py --size-mb 64    # quick run
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from got_data.records import (
    Annotation,
    Box,
    GroundedObject,
    ImageInfo,
    Provenance,
    SourceInfo,
    T2IRecord,
    make_key,
    render_got,
)
from got_data.shards import ShardWriter, validate_paths

DESCRIPTION = (
    "A dense field of colored static covers the whole frame, like a television tuned to no channel, with "
    "a bright red square in the middle and a thin blue stripe running along the bottom edge."
)
OBJECTS = [("a bright red square", Box(x1=380, y1=380, x2=620, y2=620)), ("a thin blue stripe", Box(x1=0, y1=930, x2=999, y2=999))]


def noise_jpeg(seed: int, side: int) -> bytes:
    """Random pixels barely compress, so a few images give a shard of a predictable size."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def make_record(i: int, data: bytes, side: int) -> T2IRecord:
    digest = hashlib.sha256(data).hexdigest()
    annotations = [Annotation(DESCRIPTION.index(p), DESCRIPTION.index(p) + len(p), (b,)) for p, b in OBJECTS]
    got, spans = render_got(DESCRIPTION, annotations)
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    return T2IRecord(
        key=make_key("t2i", "bench", f"noise/{i}", digest),
        source=SourceInfo(dataset="bench", input_ref=f"noise/{i}"),
        images=[ImageInfo(role="image", member="jpg", sha256=digest, width=side, height=side, format="JPEG", original_sha256=digest)],
        got=got,
        provenance=Provenance(pipeline="bench", pipeline_version="0", got_data_version="0", started_at=now, finished_at=now),
        prompt="Colored static with a red square.",
        description=DESCRIPTION,
        objects=[GroundedObject(phrase=p, boxes=[b], span=s) for (p, b), s in zip(OBJECTS, spans)],
    )


def write_shard(folder: Path, size_mb: int, side: int) -> Path:
    images = [noise_jpeg(seed, side) for seed in range(8)]
    per_sample = sum(len(x) for x in images) / len(images)
    count = max(1, int(size_mb * 1024 * 1024 / per_sample))
    with ShardWriter(folder, samples_per_shard=count) as writer:
        for i in range(count):
            data = images[i % len(images)]
            writer.write(make_record(i, data, side), {"jpg": data})
    return folder / "got-000000.tar"


def measure(tool: str, path: Path) -> dict[str, float]:
    """Run in a child process: one tool over one shard, then its own peak RSS."""
    start = time.perf_counter()
    if tool == "validate":
        report = validate_paths(path)
        assert report.ok, report.issues[:3]
        samples = report.samples
    else:
        keys = set()
        with tarfile.open(path, "r|") as tar:
            for info in tar:
                tar.extractfile(info).read()
                keys.add(info.name.split(".", 1)[0])
        samples = len(keys)
    seconds = time.perf_counter() - start
    return {"samples": samples, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux's VmHWM belongs to the process image; ru_maxrss would also carry
    the parent's peak across fork+exec, hiding the child's own figure."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(tool: str, path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--measure", tool, str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the large shard")
    parser.add_argument("--small-mb", type=int, default=16, help="size of the small shard")
    parser.add_argument("--side", type=int, default=768, help="image side in pixels")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the shards (default: a temp dir)")
    parser.add_argument("--measure", nargs=2, metavar=("TOOL", "SHARD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        shards = {
            "small": write_shard(root / "small", args.small_mb, args.side),
            "large": write_shard(root / "large", args.size_mb, args.side),
        }
        print(f"{'shard':<6} {'size MiB':>9} {'tool':<9} {'samples':>8} {'seconds':>8} {'samples/s':>10} {'peak RSS MiB':>13}")
        results: dict[tuple[str, str], dict[str, float]] = {}
        for label, path in shards.items():
            size = path.stat().st_size / 2**20
            for tool in ("tarscan", "validate"):
                r = results[(label, tool)] = run_child(tool, path)
                print(f"{label:<6} {size:>9.1f} {tool:<9} {r['samples']:>8} {r['seconds']:>8.2f} "
                      f"{r['samples'] / r['seconds']:>10.1f} {r['peak_rss_mb']:>13.1f}")
        for label in shards:
            v, t = results[(label, "validate")], results[(label, "tarscan")]
            print(f"{label}: validate runs at {(v['samples'] / v['seconds']) / (t['samples'] / t['seconds']):.3f}x "
                  "the bare tarfile scan's samples/s")
        grow = results[("large", "validate")]["peak_rss_mb"] - results[("small", "validate")]["peak_rss_mb"]
        ratio = shards["large"].stat().st_size / shards["small"].stat().st_size
        print(f"validate peak RSS, large minus small shard: {grow:+.1f} MiB for a {ratio:.0f}x larger shard")


if __name__ == "__main__":
    main()
