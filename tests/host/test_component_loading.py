import os
from pathlib import Path

import pytest

from airssys_actors import Component, ComponentWorldMismatch, InvalidComponent

from ..conftest import COMPONENTS, GUESTS


def test_load_gives_a_name_and_a_content_hash_version():
    component = Component.load(COMPONENTS / "echo.wat")
    assert component.name == "echo"
    assert len(component.version) == 12 and component.digest.startswith(component.version)
    labelled = Component.load(COMPONENTS / "echo.wat", version="v7", name="other")
    assert (labelled.version, labelled.name) == ("v7", "other")


def test_same_source_is_compiled_once():
    a = Component.load(COMPONENTS / "counter.wat")
    b = Component.load((COMPONENTS / "counter.wat").read_bytes())
    assert a._compiled is b._compiled


def forget_compiled(host_component, monkeypatch):
    """As in a new run of the node: nothing compiled in memory yet."""
    monkeypatch.setattr(host_component, "_MEMO", {})
    monkeypatch.setattr(host_component, "_MEMO_BY_SOURCE", {})


def test_compiled_artifact_is_cached_on_disk(tmp_path, monkeypatch):
    import airssys_actors._host._component as host_component

    monkeypatch.setenv("AIRSSYS_CACHE_DIR", str(tmp_path))
    forget_compiled(host_component, monkeypatch)
    Component.load(COMPONENTS / "echo.wat")
    artifacts = list(tmp_path.glob("*.cwasm"))
    assert len(artifacts) == 1
    # A second load (fresh memo, as in a new run of the node) deserializes instead of compiling.
    forget_compiled(host_component, monkeypatch)
    compiled = []
    real = host_component.cm.Component

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **k):
            compiled.append(1)
            super().__init__(*a, **k)

    monkeypatch.setattr(host_component.cm, "Component", Counting)
    Component.load(COMPONENTS / "echo.wat")
    assert compiled == []


def test_a_damaged_cache_entry_is_recompiled(tmp_path, monkeypatch):
    import airssys_actors._host._component as host_component

    monkeypatch.setenv("AIRSSYS_CACHE_DIR", str(tmp_path))
    forget_compiled(host_component, monkeypatch)
    Component.load(COMPONENTS / "echo.wat")
    (artifact,) = tmp_path.glob("*.cwasm")
    artifact.write_bytes(b"not a compiled component")
    forget_compiled(host_component, monkeypatch)
    assert Component.load(COMPONENTS / "echo.wat").name == "echo"


@pytest.mark.parametrize("data, message", [
    (b"", "invalid WAT"),
    (b"\x00\x01\x02garbage", "not WebAssembly|invalid WAT"),
    (b"\0asm\x0d\x00\x01\x00truncated", "not a valid component"),
    (b"(component (core module", "invalid WAT"),
])
def test_corrupt_bytes_are_invalid_components(data, message):
    with pytest.raises(InvalidComponent, match=message):
        Component.load(data)


def test_missing_file():
    with pytest.raises(InvalidComponent, match="cannot read"):
        Component.load("/nonexistent/guest.wasm")


def test_core_module_is_not_a_component():
    with pytest.raises(InvalidComponent, match="core wasm module"):
        Component.load(GUESTS / "core_module.wat")


def test_missing_exports_are_named():
    with pytest.raises(ComponentWorldMismatch) as info:
        Component.load(COMPONENTS / "notaworld.wat")
    assert info.value.problems == [
        "missing export 'handle'", "missing export 'snapshot'", "missing export 'upgrade'",
    ]


def test_unknown_import_is_named():
    with pytest.raises(ComponentWorldMismatch, match=r"imports airssys:actor/host@0\.1\.0#teleport"):
        Component.load(GUESTS / "bad_import.wat")


def test_wrong_export_type_is_named():
    with pytest.raises(ComponentWorldMismatch, match="export 'handle' has the wrong type"):
        Component.load(GUESTS / "wrong_types.wat")


async def test_spawning_a_bad_component_raises_before_any_process_starts(node):
    with pytest.raises(ComponentWorldMismatch):
        await node.spawn(str(COMPONENTS / "notaworld.wat"))
    assert node.pids() == []


def test_reference_world_matches_wit(tmp_path):
    """world.wasm must be regenerated (make world) whenever wit/ changes."""
    import shutil
    import subprocess
    import sys

    tool = shutil.which("wasm-tools") or str(Path(sys.executable).with_name("wasm-tools"))
    if not os.path.exists(tool):
        pytest.skip("wasm-tools is not installed")
    root = Path(__file__).resolve().parents[2]
    ours = subprocess.run([tool, "component", "wit", str(root / "airssys_actors/_host/world.wasm")],
                          capture_output=True, text=True, check=True).stdout
    core = tmp_path / "core.wasm"
    fresh = tmp_path / "fresh.wasm"
    subprocess.run([tool, "component", "embed", str(root / "wit"), "--dummy", "-o", str(core)], check=True)
    subprocess.run([tool, "component", "new", str(core), "-o", str(fresh)], check=True)
    theirs = subprocess.run([tool, "component", "wit", str(fresh)], capture_output=True, text=True, check=True).stdout
    assert ours == theirs




def test_loading_the_same_source_again_does_not_convert_it_again(monkeypatch):
    import airssys_actors._host._component as host_component

    first = Component.load(COMPONENTS / "adder.wat")
    converted = []
    real = host_component._to_binary
    monkeypatch.setattr(host_component, "_to_binary", lambda data: converted.append(1) or real(data))
    again = Component.load(COMPONENTS / "adder.wat", version="v2")
    assert again._compiled is first._compiled and again.version == "v2"
    assert converted == []
