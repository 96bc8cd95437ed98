"""The per-tensor index of weights parts (issue 17, item 1; kiln_driver/weights_layout.py).

Real builds (the shared mlp_v3 build here; its weights-only update in test_weights_update.py) list every tensor of
their weights part, and the bytes agree with the portable graph's own weight files; synthetic wrappers check what
the index refuses to claim.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import DriverRun

from kiln_driver.weights_layout import NoLayout, weights_layout

ENTRY = "m/data/aotinductor/model/w.wrapper_weights.blob"


def _weights(run: DriverRun) -> dict[str, Any]:
    return next(p for p in run.manifest["parts"] if p["role"] == "weights")


def _portable_weight_files(pt2: Path) -> set[str]:
    with zipfile.ZipFile(pt2) as z:
        return {hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist() if "/data/weights/weight_" in n}


@pytest.mark.slow
def test_a_real_weights_part_lists_every_tensor(mlp_v3: DriverRun, fixtures: Path) -> None:
    part = _weights(mlp_v3)
    blob = (mlp_v3.out / "parts" / part["sha256"]).read_bytes()
    tensors = part["tensors"]
    assert [t["name"] for t in tensors] == [
        "net_0_weight",
        "net_0_bias",
        "net_2_weight",
        "net_2_bias",
        "net_4_weight",
        "net_4_bias",
    ]
    covered = bytearray(len(blob))
    end = 0
    for t in tensors:
        assert t["offset"] >= end and t["offset"] % 64 == 0, t
        end = t["offset"] + t["size"]
        assert hashlib.sha256(blob[t["offset"] : end]).hexdigest() == t["sha256"], t["name"]
        covered[t["offset"] : end] = b"\1" * t["size"]
    assert all(b == 0 for b, c in zip(blob, covered, strict=True) if not c), "a byte outside the tensors is not zero"
    # The same bytes the portable graph stores for each weight (its tensors, unpadded): one tensor, one hash.
    assert {t["sha256"] for t in tensors} <= _portable_weight_files(fixtures / "mlp.pt2")
    assert "6 tensors" in mlp_v3.stderr


def _wrapper(constants: list[dict[str, str]]) -> str:
    lines = []
    for i, c in enumerate(constants):
        lines += [f"    constants_info_[{i}].{k} = {v};" for k, v in c.items()]
    return "\n".join(lines) + "\n"


def _const(name: str, data_size: int, *, shape: str, dtype: str = "float32", folded: bool = False) -> dict[str, str]:
    dims = [int(d) for d in shape.strip("{}").split(",") if d.strip()]
    stride, acc = [], 1
    for d in reversed(dims):
        stride.insert(0, acc)
        acc *= d
    return {
        "name": f'"{name}"',
        "dtype": f"cached_torch_dtype_{dtype}",
        "offset": "0",
        "data_size": str(data_size),
        "from_folded": "true" if folded else "false",
        "shape": shape,
        "stride": "{" + ", ".join(map(str, stride)) + "}",
    }


def _package(tmp_path: Path, source: str, blob: bytes) -> tuple[Path, Path]:
    code = tmp_path / "code.zip"
    with zipfile.ZipFile(code, "w") as z:
        z.writestr(ENTRY.removesuffix("_weights.blob") + ".cpp", source)
    path = tmp_path / "w.blob"
    path.write_bytes(blob)
    return code, path


def test_slots_are_walked_in_order_skipping_folded_constants(tmp_path: Path) -> None:
    a, b = bytes(range(40)), bytes(range(64))
    source = _wrapper(
        [_const("a", 64, shape="{10}"), _const("folded", 64, shape="{16}", folded=True), _const("b", 64, shape="{16}")]
    )
    code, blob = _package(tmp_path, source, a + b"\0" * 24 + b)
    assert weights_layout(code, ENTRY, blob) == [
        {"name": "a", "offset": 0, "size": 40, "sha256": hashlib.sha256(a).hexdigest()},
        {"name": "b", "offset": 64, "size": 64, "sha256": hashlib.sha256(b).hexdigest()},
    ]


def test_padding_that_is_not_zero_stays_in_the_range(tmp_path: Path) -> None:
    """A device fills the gaps with zeros; bytes it could not restore that way belong to the tensor's range."""
    data = bytes(range(40)) + b"\x01" + b"\0" * 23
    code, blob = _package(tmp_path, _wrapper([_const("a", 64, shape="{10}")]), data)
    assert weights_layout(code, ENTRY, blob)[0]["size"] == 64


def test_an_unknown_dtype_or_mkldnn_constant_takes_its_whole_slot(tmp_path: Path) -> None:
    opaque = {**_const("m", 64, shape="{10}"), "opaque_metadata": "{1, 2}"}
    code, blob = _package(tmp_path, _wrapper([_const("q", 64, shape="{10}", dtype="qint8"), opaque]), b"\1" * 128)
    assert [t["size"] for t in weights_layout(code, ENTRY, blob)] == [64, 64]


def test_a_tensor_without_elements_takes_no_bytes_whatever_its_storage(tmp_path: Path) -> None:
    """Inductor writes nothing for an empty tensor, while the wrapper's data_size is its storage's (an empty view of
    a non-empty storage has one): the slot is zero bytes, the next tensor starts where it would have."""
    code, blob = _package(
        tmp_path, _wrapper([_const("e", 64, shape="{0, 4}"), _const("a", 64, shape="{16}")]), b"\1" * 64
    )
    assert [(t["name"], t["offset"], t["size"]) for t in weights_layout(code, ENTRY, blob)] == [("a", 0, 64)]


BAD: list[tuple[str, str, bytes, str]] = [
    ("sizes that do not add up to the blob", _wrapper([_const("a", 64, shape="{16}")]), b"\0" * 128, "take 64 bytes"),
    ("indices with a hole", 'constants_info_[1].name = "a";\n', b"", "not 0..n-1"),
    (
        "no data_size",
        '    constants_info_[0].name = "a";\n    constants_info_[0].from_folded = false;\n',
        b"",
        "data_size",
    ),
    ("a name with a quote", _wrapper([{**_const("a", 64, shape="{16}"), "name": '"a\\"b"'}]), b"\0" * 64, "readable"),
]


@pytest.mark.parametrize(("why", "source", "blob", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_wrapper_that_does_not_describe_the_blob_gives_no_index(
    tmp_path: Path, why: str, source: str, blob: bytes, message: str
) -> None:
    code, path = _package(tmp_path, source, blob)
    with pytest.raises(NoLayout, match=message):
        weights_layout(code, ENTRY, path)


def test_a_code_part_without_the_wrapper_gives_no_index(tmp_path: Path) -> None:
    code = tmp_path / "code.zip"
    zipfile.ZipFile(code, "w").close()
    blob = tmp_path / "w.blob"
    blob.write_bytes(b"")
    with pytest.raises(NoLayout, match="has no"):
        weights_layout(code, ENTRY, blob)
    with pytest.raises(NoLayout, match="not a weights blob"):
        weights_layout(code, "m/x.so", blob)
