"""Split / assemble of AOTInductor packages: re-exported from the device runtime, the one implementation.

The driver splits packages into parts and the device assembles them; both must agree byte for byte, so the
code lives in `kiln_runtime.package_parts` (standard library only) and the driver depends on `kiln-runtime`.
"""

from kiln_runtime.package_parts import (
    ALIGNMENT,
    WEIGHTS_BLOB_SUFFIX,
    PartFile,
    assemble_package,
    check_weights_entry,
    copy_entry,
    is_weights_entry,
    split_package,
    write_stored_entry,
)

__all__ = [
    "ALIGNMENT",
    "WEIGHTS_BLOB_SUFFIX",
    "PartFile",
    "assemble_package",
    "check_weights_entry",
    "copy_entry",
    "is_weights_entry",
    "split_package",
    "write_stored_entry",
]
