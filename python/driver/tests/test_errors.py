"""Exception -> error code mapping, on real torch exception types (no compile needed)."""

from __future__ import annotations

import pytest
import torch
from torch._inductor import exc as inductor_exc

from kiln_driver.errors import (
    DriverError,
    ErrorCode,
    classify_compile_error,
    classify_load_error,
    compiler_errors,
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
