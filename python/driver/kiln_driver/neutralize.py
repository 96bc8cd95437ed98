"""Copy an uploaded `.pt2` into the job's work dir so that loading it cannot run pickled code.

`torch.export.load` unpickles the archive's sample inputs (retrying with weights_only=False). We blank
every `data/sample_inputs/*` entry instead: torch's loader reads empty bytes as "no example inputs", and we
synthesize inputs from the declared signature ourselves. Pickled weights, custom/opaque objects and
legacy pickled weight files would be unpickled too, so they are refused, and precompiled AOTInductor code
inside an upload (which the loader would dlopen) is dropped. Text torch evaluates while loading must fit the
strict grammars (expr_grammar.py: shape expressions are sympified, guards exec()ed), and pytree specs must not
name modules for torch to import. Every other entry is copied byte for byte.
The TypeScript validator rejects all of this before a job exists; this is the second line of defense.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DriverError, ErrorCode
from .expr_grammar import program_expression_problems
from .package_parts import copy_entry, write_stored_entry

SAMPLE_INPUTS_DIR = "data/sample_inputs/"
AOTI_DIR = "data/aotinductor/"
_PICKLED_CONSTANT_PREFIXES = ("custom_obj_", "opaque_obj_")


@dataclass
class NeutralizeReport:
    top_folder: str
    entries: int = 0
    blanked: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _invalid(message: str, **details: object) -> DriverError:
    return DriverError(ErrorCode.INVALID_MODEL, message, dict(details))


def _split_top(name: str) -> tuple[str, str]:
    top, sep, rest = name.partition("/")
    if not sep or not top or not rest:
        raise _invalid(f"entry {name!r} is not inside the archive's top folder", entry=name)
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in rest.split("/")):
        raise _invalid(f"entry name {name!r} is not allowed", entry=name)
    return top, rest


def _check_expressions(rel: str, document: object, *, is_program: bool) -> None:
    problems = program_expression_problems(document, is_program=is_program)
    if problems:
        raise _invalid(
            f"{rel}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            entry=rel,
            problems=problems[:20],
        )


# torch.utils._pytree.treespec_loads imports the module an enum in a context names (enum_object_hook), and the
# module of a defaultdict's default factory: neither may appear in a spec torch will decode.
_IMPORTING_PYTREE_TYPES = frozenset({"collections.defaultdict"})


def _check_pytree_specs(rel: str, program: object) -> None:
    entries = program.get("graph_module", {}).get("module_call_graph", []) if isinstance(program, dict) else []
    for entry in entries if isinstance(entries, list) else []:
        signature = entry.get("signature") if isinstance(entry, dict) else None
        for key in ("in_spec", "out_spec") if isinstance(signature, dict) else ():
            try:
                stack = [json.loads(signature[key])]
            except (ValueError, TypeError, KeyError, RecursionError) as exc:
                raise _invalid(f"{rel}: a {key} is not valid JSON", entry=rel) from exc
            while stack:
                node = stack.pop()
                if isinstance(node, list):
                    stack.extend(node)
                elif isinstance(node, dict):
                    if "__enum__" in node or node.get("type") in _IMPORTING_PYTREE_TYPES:
                        raise _invalid(f"{rel}: a {key} names a module for torch to import", entry=rel)
                    context = node.get("context")
                    if isinstance(context, str) and context[:1] in ("[", "{"):
                        with contextlib.suppress(ValueError, RecursionError):
                            stack.append(json.loads(context))
                    stack.extend(node.values())


def _check_program(zin: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str) -> None:
    try:
        program = json.loads(zin.read(info))
    except (ValueError, RecursionError) as exc:
        raise _invalid(f"{rel} is not valid JSON: {exc}", entry=rel) from exc
    _check_expressions(rel, program, is_program=True)
    _check_pytree_specs(rel, program)


def _check_payload_config(zin: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str) -> None:
    try:
        document = json.loads(zin.read(info))
        config = document["config"]
        items = config.items()
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise _invalid(f"{rel} is not a payload config: {exc}", entry=rel) from exc
    _check_expressions(rel, document, is_program=False)
    for fqn, meta in items:
        path_name = str(meta.get("path_name", "")) if isinstance(meta, dict) else ""
        if not isinstance(meta, dict) or meta.get("use_pickle") or path_name.startswith(_PICKLED_CONSTANT_PREFIXES):
            raise _invalid(
                f"{fqn!r} is stored as a pickle ({rel}); Kiln loads only raw tensor payloads",
                entry=rel,
                name=str(fqn),
            )


def neutralize_model(src: Path, dst: Path) -> NeutralizeReport:
    """Write the safe copy of `src` to `dst`; raises DriverError(INVALID_MODEL) for archives we will not load."""
    try:
        zin = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _invalid(f"the model is not a readable zip archive: {exc}") from exc
    with zin:
        infos = [i for i in zin.infolist() if not i.is_dir()]
        if not infos:
            raise _invalid("the archive is empty")
        tops = {_split_top(i.filename)[0] for i in infos}
        if len(tops) != 1:
            raise _invalid("all entries must sit under one top folder", topFolders=sorted(tops)[:10])
        report = NeutralizeReport(top_folder=tops.pop())
        by_rel = {_split_top(i.filename)[1]: i for i in infos}
        if len(by_rel) != len(infos):
            raise _invalid("the archive has duplicate entry names")
        if "archive_format" not in by_rel or zin.read(by_rel["archive_format"]).strip() != b"pt2":
            raise _invalid("not a torch.export archive (archive_format is missing or not 'pt2')")
        for rel, info in by_rel.items():
            if rel.startswith(("data/weights/", "data/constants/")) and rel.endswith(".pt"):
                raise _invalid(f"{rel} is a legacy pickled payload file", entry=rel)
            if rel.endswith("_weights_config.json") or rel.endswith("_constants_config.json"):
                _check_payload_config(zin, info, rel)
            elif rel.startswith("models/") and rel.endswith(".json"):
                _check_program(zin, info, rel)

        try:
            with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
                for info in infos:
                    rel = _split_top(info.filename)[1]
                    if rel.startswith(AOTI_DIR):
                        report.dropped.append(info.filename)
                    elif rel.startswith(SAMPLE_INPUTS_DIR):
                        write_stored_entry(zout, info.filename, io.BytesIO(), 0, info.date_time)
                        report.blanked.append(info.filename)
                    else:
                        copy_entry(zin, info, zout)
                    report.entries += 1
        except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
            raise _invalid(f"the archive cannot be read: {exc}") from exc
    return report
