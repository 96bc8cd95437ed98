"""Exception -> error code mapping, on real torch exception types (no compile needed), and error.json without the
worker's file paths."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from torch._inductor import exc as inductor_exc

from kiln_driver.errors import (
    DriverError,
    ErrorCode,
    classify_compile_error,
    classify_load_error,
    compiler_errors,
    scrub_paths,
    short_traceback,
)

GXX_OUTPUT = """In file included from /x/torch/include/c10/util/BFloat16.h:3,
                 from /x/kernel.cpp:2:
/tmp/cache/kernel.cpp: In function 'void cpp_fused_relu_0(float*, int64_t)':
/tmp/cache/kernel.cpp:20:37: error: 'compile' was not declared in this scope
   20 |     auto tmp1 = compile error!;
      |                 ^~~~~~~
"""


def _wrapped(inner: Exception) -> Exception:
    """What aoti_compile_and_package raises: inductor wraps the real error, with a cause chain."""
    try:
        try:
            raise inner
        except Exception as e:
            raise inductor_exc.InductorError(e, None) from e
    except inductor_exc.InductorError as outer:
        return outer


def test_cpp_compile_error() -> None:
    err = classify_compile_error(_wrapped(inductor_exc.CppCompileError(["g++", "kernel.cpp"], GXX_OUTPUT)))
    assert err.code == ErrorCode.COMPILE_FAILED and err.exit_code == 3
    assert "'compile' was not declared" in err.message
    assert "error:" in err.details["compilerErrors"] and "BFloat16.h" not in err.details["compilerErrors"]
    assert err.details["command"] == "g++ kernel.cpp"


def test_compiler_killed_is_oom() -> None:
    output = "g++: fatal error: Killed signal terminated program cc1plus\ncompilation terminated."
    err = classify_compile_error(_wrapped(inductor_exc.CppCompileError(["g++"], output)))
    assert err.code == ErrorCode.COMPILE_OOM and err.exit_code == 3


def test_memory_error_is_oom() -> None:
    assert classify_compile_error(_wrapped(MemoryError())).code == ErrorCode.COMPILE_OOM


@pytest.mark.parametrize(
    "inner",
    [
        inductor_exc.MissingOperatorWithoutDecomp(torch.ops.aten.linalg_eig.default, [], {}),
        inductor_exc.LoweringException(ValueError("bad"), torch.ops.aten.linalg_eig.default, [], {}),
    ],
)
def test_lowering_errors_are_unsupported_op(inner: Exception) -> None:
    err = classify_compile_error(_wrapped(inner))
    assert err.code == ErrorCode.UNSUPPORTED_OP and err.exit_code == 3
    assert err.details["op"] == "aten.linalg_eig.default"


def test_missing_compiler_is_toolchain_mismatch() -> None:
    err = classify_compile_error(_wrapped(inductor_exc.InvalidCxxCompiler()))
    assert err.code == ErrorCode.TOOLCHAIN_MISMATCH and err.exit_code == 1


def test_host_problems_are_transient() -> None:
    err = classify_compile_error(_wrapped(OSError(28, "No space left on device")))
    assert err.code == ErrorCode.DRIVER_CRASHED and err.exit_code == 1


def test_other_inductor_failures_are_deterministic() -> None:
    err = classify_compile_error(_wrapped(AssertionError("unexpected stride")))
    assert err.code == ErrorCode.COMPILE_FAILED and "unexpected stride" in err.message
    assert "traceback" in err.details


def test_load_error_unknown_operator() -> None:
    from torch._export.serde.serialize import SerializeError

    inner = SerializeError("We failed to resolve torch.ops.aten.foo.default to an operator. If it's a custom op")
    err = classify_load_error(inner)
    assert err.code == ErrorCode.UNSUPPORTED_OP and err.details["op"] == "torch.ops.aten.foo.default"


def test_load_error_otherwise_invalid_model() -> None:
    err = classify_load_error(KeyError("graph_module"))
    assert err.code == ErrorCode.INVALID_MODEL and err.exit_code == 3


def test_compiler_errors_falls_back_to_the_head() -> None:
    assert compiler_errors("no marker here\nsecond") == "no marker here\nsecond"


def test_error_json_shape() -> None:
    assert DriverError("LOAD_FAILED", "boom", {"signal": "SIGSEGV"}).to_json() == {
        "code": "LOAD_FAILED",
        "message": "boom",
        "details": {"signal": "SIGSEGV"},
    }


# ------------------------------------------------------------------------------------------ no worker paths
# What inductor and torch really say when a build fails on a worker: the generated sources live in the job's
# TMPDIR and inductor cache, the headers in the venv's site-packages.
JOB = "/srv/kiln/work/jobs/3f2c9a/tmp/kiln-build-4xvocyte"
WRAPPER = f"{JOB}/inductor-cache/chz2zydm/cqko3gwsxaycf3nlpiwjduq5.wrapper.cpp"
SITE = "/opt/kiln/.kiln/venv/lib/python3.11/site-packages"
INDUCTOR_GXX_OUTPUT = f"""In file included from {SITE}/torch/include/torch/csrc/inductor/aoti_runtime/model.h:17,
                 from {WRAPPER}:2:
{WRAPPER}: In member function 'void torch::aot_inductor::AOTInductorModel::run_impl(...)':
{WRAPPER}:855:38: error: \u2018None\u2019 was not declared in this scope
  855 |     int64_t u1_st_index = None < 0 ? None + 3L : None;
      |                                      ^~~~
"""
INDUCTOR_GXX_CMD = [
    "/usr/bin/g++",
    WRAPPER,
    "-D",
    "TORCH_INDUCTOR_CPP_WRAPPER",
    "-march=x86-64-v3",
    "-include",
    f"{JOB}/torchinductor_nobody/precompiled_headers/cbp6fbkc.h",
    "-I/usr/include/python3.11",
    f"-I{SITE}/torch/include",
    f"-L{SITE}/torch/lib",
    "-c",
    "-o",
    WRAPPER.replace(".cpp", ".o"),
]
# An absolute path where one can start: at the start, after a space, quote, "=", "(", ":" or a -X flag.
ANY_ABSOLUTE_PATH = re.compile(r"(?:^|[\s\"'=(:,]|-[A-Za-z])~?/[\w.+@%-]+/")


def _assert_no_paths(err: DriverError, *extra: str) -> str:
    text = json.dumps(err.to_json(), ensure_ascii=False)
    assert not ANY_ABSOLUTE_PATH.search(text.replace("\\n", "\n")), text
    for fragment in ("/srv/kiln", "/opt/kiln", "/tmp/", "site-packages", sys.prefix, *extra):
        assert fragment not in text, (fragment, text)
    return text


def test_compile_error_from_inductor_names_no_worker_path() -> None:
    err = classify_compile_error(_wrapped(inductor_exc.CppCompileError(INDUCTOR_GXX_CMD, INDUCTOR_GXX_OUTPUT)))
    text = _assert_no_paths(err)
    assert err.code == ErrorCode.COMPILE_FAILED
    # What the tenant needs stays: the compiler's complaint, the generated file and line, the flags.
    assert err.to_json()["message"] == (
        "the C++ compiler rejected the generated code: "
        "cqko3gwsxaycf3nlpiwjduq5.wrapper.cpp:855:38: error: \u2018None\u2019 was not declared in this scope"
    )
    assert "int64_t u1_st_index = None < 0" in text
    command = err.to_json()["details"]["command"]
    assert command.startswith("g++ cqko3gwsxaycf3nlpiwjduq5.wrapper.cpp ") and "-march=x86-64-v3" in command
    assert "-Itorch/include" in command and "-Ltorch/lib" in command
    # The build log (stderr) is the operator's: the exception itself keeps the paths.
    assert WRAPPER in err.message


def test_traceback_keeps_torch_files_but_not_where_they_live(tmp_path: Path) -> None:
    missing = tmp_path / "job" / "compiled" / "model.pt2"
    try:
        torch.export.load(str(missing))  # raises through torch's and the standard library's code, naming our path
    except Exception as exc:  # noqa: BLE001
        err = DriverError(
            ErrorCode.LOAD_FAILED,
            f"the compiled artifact does not load: {type(exc).__name__}: {exc}",
            {"stage": "load_compiled", "traceback": short_traceback(exc)},
        )
    text = _assert_no_paths(err, str(tmp_path))
    tb = err.to_json()["details"]["traceback"]
    assert 'File "torch/export/__init__.py", line ' in tb, tb
    assert 'File "zipfile.py", line ' in tb and tb.rstrip().endswith(
        "FileNotFoundError: [Errno 2] No such file or directory: 'model.pt2'"
    )
    assert err.to_json()["message"].endswith("No such file or directory: 'model.pt2'")
    assert "Traceback" in text


def test_host_error_names_no_worker_path() -> None:
    exc = OSError(28, "No space left on device", f"{JOB}/compiled/model.pt2")
    err = classify_compile_error(_wrapped(exc))
    _assert_no_paths(err)
    assert err.to_json()["message"] == "OSError: [Errno 28] No space left on device: 'model.pt2'"


def test_python_failure_in_generated_code_names_no_worker_path() -> None:
    # Inductor's Python-level failures name the generated module and the user's cache dir.
    inner = AssertionError(
        f"unexpected stride in {JOB}/inductor-cache/ab/cabc123.py line 40 (cache ~/.cache/torchinductor/ab)"
    )
    err = classify_compile_error(_wrapped(inner))
    _assert_no_paths(err, "~/.cache")
    assert "unexpected stride in cabc123.py line 40 (cache ab)" in err.to_json()["message"]


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("see https://pytorch.org/docs/stable/export.html", "see https://pytorch.org/docs/stable/export.html"),
        ("Eq((s0)/2/3, 4) and torch/_inductor/codegen/cpp.py", "Eq((s0)/2/3, 4) and torch/_inductor/codegen/cpp.py"),
        ("non-a/b/c and x//2", "non-a/b/c and x//2"),
        (f'File "{SITE}/torch/_inductor/compile_fx.py", line 3', 'File "torch/_inductor/compile_fx.py", line 3'),
        (f"dlopen failed: {JOB}/data/aotinductor/model/x.wrapper.so: bad ELF", "dlopen failed: x.wrapper.so: bad ELF"),
        (f"--sysroot={JOB}/root -I{JOB}/include", "--sysroot=root -Iinclude"),
    ],
)
def test_scrub_paths(text: str, scrubbed: str) -> None:
    assert scrub_paths(text) == scrubbed


def test_scrub_paths_walks_details() -> None:
    details = {"a": [f"{JOB}/x.cpp", {"b": (f"{JOB}/y.cpp", 3)}], "n": 1.5, "none": None}
    assert scrub_paths(details) == {"a": ["x.cpp", {"b": ["y.cpp", 3]}], "n": 1.5, "none": None}


def test_codes_and_exit_classes_are_the_shared_definition() -> None:
    """libs/contracts/src/error-codes.json: the codes the driver may report, and which of them exit 3 (the worker
    does not retry) or 1 (transient)."""
    shared = json.loads(
        (Path(__file__).resolve().parents[3] / "libs/contracts/src/error-codes.json").read_text("utf-8")
    )
    want = {c["code"]: c["driver"] for c in shared["service"] if "driver" in c}
    codes = {value for name, value in vars(ErrorCode).items() if name.isupper()}
    assert codes == set(want)
    exits = {"deterministic": 3, "transient": 1}
    assert {code: DriverError(code, "").exit_code for code in codes} == {code: exits[k] for code, k in want.items()}
