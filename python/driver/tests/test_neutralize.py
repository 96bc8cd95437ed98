from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

from kiln_driver.compile import load_program
from kiln_driver.errors import DriverError
from kiln_driver.neutralize import neutralize_model


def _data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    with path.open("rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def test_sample_inputs_blanked_everything_else_identical(fixtures: Path, tmp_path: Path) -> None:
    src, dst = fixtures / "mlp.pt2", tmp_path / "safe.pt2"
    report = neutralize_model(src, dst)
    assert report.blanked == ["mlp/data/sample_inputs/model.pt"]
    assert report.dropped == []
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst) as b:
        assert a.namelist() == b.namelist()
        for info in b.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            assert _data_offset(dst, info) % 64 == 0, info.filename
            if "/data/sample_inputs/" in info.filename:
                assert a.read(info.filename) != b"" and b.read(info) == b""
            else:
                assert b.read(info) == a.read(info.filename), info.filename


def test_neutralized_model_loads_without_example_inputs(fixtures: Path, tmp_path: Path) -> None:
    neutralize_model(fixtures / "cnn.pt2", tmp_path / "cnn.pt2")
    ep = load_program(tmp_path / "cnn.pt2")
    assert ep.example_inputs is None
    assert len(ep.graph_signature.user_inputs) == 1


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        ({"a/archive_format": b"pt2", "b/models/model.json": b"{}"}, "one top folder"),
        ({"archive_format": b"pt2"}, "top folder"),
        ({"a/archive_format": b"pt2", "a/../../etc/passwd": b"x"}, "not allowed"),
        ({"a/models/model.json": b"{}"}, "archive_format"),
        ({"a/archive_format": b"pt2", "a/data/weights/model.pt": b"\x80\x04"}, "legacy pickled"),
        (
            {
                "a/archive_format": b"pt2",
                "a/data/constants/model_constants_config.json": b'{"config": {"obj": {"path_name": "custom_obj_0"}}}',
            },
            "pickle",
        ),
    ],
)
def test_refused_archives(tmp_path: Path, entries: dict[str, bytes], fragment: str) -> None:
    with pytest.raises(DriverError) as info:
        neutralize_model(_zip(tmp_path / "in.pt2", entries), tmp_path / "out.pt2")
    assert info.value.code == "INVALID_MODEL"
    assert fragment in info.value.message


def test_not_a_zip(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DriverError) as info:
        neutralize_model(bad, tmp_path / "out.pt2")
    assert info.value.code == "INVALID_MODEL"


def test_precompiled_code_in_an_upload_is_dropped(tmp_path: Path) -> None:
    src = _zip(
        tmp_path / "in.pt2",
        {"a/archive_format": b"pt2", "a/data/aotinductor/model/x.wrapper.so": b"\x7fELF", "a/extra/x": b"1"},
    )
    report = neutralize_model(src, tmp_path / "out.pt2")
    assert report.dropped == ["a/data/aotinductor/model/x.wrapper.so"]
    with zipfile.ZipFile(tmp_path / "out.pt2") as z:
        assert z.namelist() == ["a/archive_format", "a/extra/x"]


def _with_program_edit(fixtures: Path, tmp_path: Path, edit: Any) -> Path:
    """The MLP fixture with its program JSON edited (the driver must refuse it before torch reads it)."""
    src, dst = fixtures / "mlp.pt2", tmp_path / "edited.pt2"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("models/model.json"):
                program = json.loads(data)
                edit(program)
                data = json.dumps(program).encode()
            zout.writestr(info, data)
    return dst


def _set_size_expr(expr: str) -> Any:
    def edit(program: dict[str, Any]) -> None:
        program["graph_module"]["graph"]["tensor_values"]["x"]["sizes"][0] = {"as_expr": {"expr_str": expr}}

    return edit


def _set_guards(*guards: str) -> Any:
    def edit(program: dict[str, Any]) -> None:
        program["guards_code"] = list(guards)

    return edit


def _enum_in_spec(program: dict[str, Any]) -> None:
    signature = program["graph_module"]["module_call_graph"][0]["signature"]
    spec = json.loads(signature["in_spec"])
    spec[1]["children_spec"][1]["context"] = json.dumps([{"__enum__": True, "fqn": "this:s", "name": "x"}])
    signature["in_spec"] = json.dumps(spec)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (_set_size_expr("__import__('os').system('id')"), "tensor_values.x.sizes[0].as_expr.expr_str"),
        (_set_size_expr("Pow(Integer(10), Integer(10000000000))"), "shape expression outside the grammar"),
        (_set_guards("L['x'].size()[0] >= 1", "__import__('os').system('id')"), "guards_code[1]"),
        (_enum_in_spec, "names a module for torch to import"),
    ],
    ids=["code-in-expr_str", "pow-bomb", "code-in-guard", "enum-import-in-pytree-spec"],
)
def test_text_torch_evaluates_is_checked_before_loading(
    fixtures: Path, tmp_path: Path, edit: Any, fragment: str
) -> None:
    with pytest.raises(DriverError) as info:
        neutralize_model(_with_program_edit(fixtures, tmp_path, edit), tmp_path / "out.pt2")
    assert info.value.code == "INVALID_MODEL"
    assert fragment in info.value.message


def test_guards_torch_writes_pass(fixtures: Path, tmp_path: Path) -> None:
    # The pair fixture's derived dim makes torch write a guard; the driver accepts it.
    report = neutralize_model(fixtures / "pair.pt2", tmp_path / "pair.pt2")
    assert report.blanked == ["pair/data/sample_inputs/model.pt"]


def test_hostile_nesting_is_refused_not_a_crash(fixtures: Path, tmp_path: Path) -> None:
    src, dst = fixtures / "mlp.pt2", tmp_path / "deep.pt2"
    deep = '{"as_string_to_argument":{"k":' * 20_000 + '{"as_int":1}' + "}}" * 20_000
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("models/model.json"):
                data = data.replace(b'{"as_tensor": {"name": "x"}}', deep.encode(), 1)
            zout.writestr(info, data)
    with pytest.raises(DriverError) as info:
        neutralize_model(dst, tmp_path / "out.pt2")
    assert info.value.code == "INVALID_MODEL"
    assert "not valid JSON" in info.value.message
