"""The wheel must carry every subpackage, the top-level pipelines/ and prompts/ folders and the world models."""

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "got_data").rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert {"got_data.pipelines", "got_data.prompts"} <= listed


def test_resources_resolve_from_the_checkout():
    from got_data.resources import resource_dir

    assert (resource_dir("pipelines") / "t2i.yaml").is_file()
    assert (resource_dir("prompts") / "recaption.txt").is_file()


def test_an_installed_wheel_finds_specs_prompts_and_sample_images(tmp_path):
    """Build the wheel, unpack it outside the checkout and load every bundled resource from there."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("got_data-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = (
        "from got_data.spec import load_spec; from got_data.sample_data import sample_images_dir;"
        "import got_data.resources as r;"
        "s = load_spec('t2i.yaml'); assert 'site' in str(s.source), s.source;"
        "[r.resolve_resource('prompts', st.prompt) for st in s.stages if st.prompt];"
        "assert len(list(sample_images_dir().glob('*.jpg'))) >= 6;"
        "from got_data.world.checkpoints import world_models; m = world_models();"
        "assert 'site' in str(m.vlm) and (m.vlm / 'model.safetensors').is_file() and (m.llm / 'tokenizer.json').is_file();"
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr
