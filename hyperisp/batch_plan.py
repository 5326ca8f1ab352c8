"""Batch planning: which files to process and where each output goes.

Inputs are files, folders (``recursive`` descends into sub-folders) and glob
patterns (``shoot/**/*.NEF``). Each input maps to one output named by a pattern
with darktable-style variables:

    {stem}    input file name without its extension      IMG_0042
    {name}    input file name with its extension         IMG_0042.NEF
    {in_ext}  input extension without the dot            NEF
    {ext}     output extension, from --format or the default (jpg for develop)
    {parent}  name of the folder holding the input       day1

The pattern may contain "/" (sub-folders of the output folder) but may not leave
it. Its extension picks the output format unless --format is given. With
``-o OUTDIR`` the input tree is mirrored under OUTDIR, relative to the folder
(or glob prefix) each file was found under; without it outputs go beside the
inputs. An existing output under the final name is complete (outputs are written
atomically), so it is skipped unless ``overwrite``: a rerun resumes a batch.
"""
from __future__ import annotations

import glob
import os
import string
import time
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Iterable, Sequence

from .errors import HyperispError
from .io.images import PHOTO_EXTENSIONS

__all__ = ["RAW_EXTENSIONS", "IMAGE_EXTENSIONS", "FORMAT_EXTENSIONS", "PlanItem", "expand_inputs", "output_name",
           "plan_batch", "clean_stale_temp_files"]

# Every raw format LibRaw reads that can hold a Bayer mosaic (X-Trans/Foveon ones are refused per file).
_RAW = "dng nef nrw cr2 cr3 crw arw srf sr2 raf orf rw2 pef srw x3f 3fr fff iiq mos mef mrw kdc dcr erf raw rwl"
RAW_EXTENSIONS = frozenset(f".{e}" for e in _RAW.split()) | frozenset(f".{e.upper()}" for e in _RAW.split())
IMAGE_EXTENSIONS = frozenset(PHOTO_EXTENSIONS) | frozenset(e.upper() for e in PHOTO_EXTENSIONS)
FORMAT_EXTENSIONS = {"jpeg": "jpg", "png": "png", "png16": "png", "tiff": "tif"}
PATTERN_VARIABLES = ("stem", "name", "in_ext", "ext", "parent")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class PlanItem:
    """One input of a batch: process ``source`` into ``target``, or why not.

    ``status`` is "todo", "skipped" (the output exists) or "failed" (``reason``
    says why: no match for a glob, two inputs with the same output, ...).
    """

    source: Path
    target: Path | None
    status: str = "todo"
    reason: str = ""
    make_folder: bool = False  # the target's folder is part of a mirrored tree under -o: create it


def _is_glob(text: str) -> bool:
    return bool(_GLOB_CHARS & set(text))


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard: ``a/b/*/c*.NEF`` -> ``a/b``."""
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if _is_glob(part))
    return Path(*parts[:first]) if first else Path(".")


def _walk(folder: Path, recursive: bool) -> Iterable[Path]:
    """Files in ``folder`` (and below it when ``recursive``), sorted; hidden files and folders are left out."""
    if not recursive:
        yield from sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        return
    for top, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(top) / name


def expand_inputs(inputs: Sequence[str | PathLike], *, extensions: frozenset[str], recursive: bool = False
                  ) -> list[tuple[Path, Path | None, str]]:
    """Expand files, folders and globs into ``(file, root, problem)`` triples.

    ``root`` is the folder the file was found under (its tree is mirrored in the
    output folder); ``None`` for a file named directly. Files inside folders and
    globs are kept only when their extension is in ``extensions`` (so sidecars
    like .xmp are ignored); a file named directly is always tried and its reader
    says what is wrong. ``problem`` is non-empty for an input that gave nothing.
    """
    found: list[tuple[Path, Path | None, str]] = []
    for entry in inputs:
        text = str(entry)
        path = Path(text)
        if path.is_dir():
            files = [f for f in _walk(path, recursive) if f.suffix in extensions]
            found += [(f, path, "") for f in files]
            if not files:
                hint = "" if recursive else " (use --recursive for sub-folders)"
                found.append((path, None, f"folder has no {'raw' if '.dng' in extensions else 'image'} files{hint}"))
        elif not path.exists() and _is_glob(text):
            files = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file())
            files = [f for f in files if f.suffix in extensions]
            found += [(f, _glob_root(text), "") for f in files]
            if not files:
                found.append((path, None, "no file matches this pattern"))
        else:
            found.append((path, None, ""))  # a missing file fails later with the reader's own message
    return found


def output_name(pattern: str, source: Path, ext: str) -> str:
    """The output file name for ``source`` from a pattern such as ``"{stem}_dev.{ext}"``.

    Raises HyperispError for unknown variables or a name that would leave the output folder.
    """
    fields = [f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None]
    unknown = [f for f in fields if f not in PATTERN_VARIABLES]
    if unknown:
        raise HyperispError(None, f"--name '{pattern}': unknown variable {{{unknown[0]}}}, "
                                  f"expected {', '.join('{' + v + '}' for v in PATTERN_VARIABLES)}")
    name = pattern.format(stem=source.stem, name=source.name, in_ext=source.suffix.lstrip("."), ext=ext,
                          parent=source.resolve().parent.name)
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or ".." in parts or name.endswith(("/", os.sep)):
        raise HyperispError(None, f"--name '{pattern}' gives '{name}': expected a file name inside the output folder")
    return name


def image_output_ext(source: Path) -> str:
    """The extension (no dot) an output made from the photo ``source`` keeps by default."""
    ext = source.suffix.lower().lstrip(".")
    return ext if ext in ("jpg", "jpeg", "png", "tif", "tiff") else "png"  # WebP and the rest: lossless PNG


def clean_stale_temp_files(targets: Iterable[Path], older_than_s: float = 300.0) -> int:
    """Delete the ``.<target name>.<hex>.part`` files a killed run left beside ``targets``; returns how many.

    One folder scan per output folder. Only files untouched for ``older_than_s``
    seconds go: a younger one may belong to a run still writing it. (They never
    block anything: they are hidden and never taken for outputs.)
    """
    names_by_folder: dict[Path, set[str]] = {}
    for target in targets:
        names_by_folder.setdefault(target.parent, set()).add(target.name)
    removed, now = 0, time.time()
    for folder, names in names_by_folder.items():
        try:
            entries = [e for e in os.scandir(folder) if e.name.startswith(".") and e.name.endswith(".part")]
        except OSError:
            continue
        for entry in entries:
            # ".IMG_1.jpg.1a2b3c4d.part" -> "IMG_1.jpg"
            if entry.name[1:].rsplit(".", 2)[0] not in names:
                continue
            try:
                if now - entry.stat().st_mtime > older_than_s:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
    return removed


def plan_batch(
    inputs: Sequence[str | PathLike],
    *,
    extensions: frozenset[str],
    pattern: str,
    ext: str | None,
    output: Path | None = None,
    recursive: bool = False,
    overwrite: bool = False,
) -> list[PlanItem]:
    """Map every input to its output; see the module docstring for the rules.

    ``ext`` fills {ext}; None keeps an image input's own extension (denoise), else "png".
    ``output`` is a folder, or a file name when exactly one file is named (then an
    existing output is an error, as for a single-file command, not a skip).
    Raises HyperispError for a bad pattern or an output folder that cannot be made.
    """
    found = expand_inputs(inputs, extensions=extensions, recursive=recursive)
    single_file = (len(found) == 1 and found[0][1] is None and not found[0][2] and output is not None
                   and not output.is_dir() and output.suffix != "")
    if output is not None and not single_file:
        if output.exists() and not output.is_dir():
            raise HyperispError(output, "with several inputs or a folder, -o must be a folder")
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise HyperispError(output, f"cannot create the output folder: {err.strerror or err}") from None
    planned: list[tuple[Path, Path | None, str, Path | None]] = []
    for source, root, problem in found:
        if problem:
            target = None
        elif single_file:
            target = output
        else:
            name = output_name(pattern, source, ext or image_output_ext(source))
            folder = source.parent if output is None else output / (source.parent.relative_to(root) if root else "")
            target = folder / name
        planned.append((source, root, problem, target))
    # Files found in folders or globs that are this batch's own outputs (x_denoised.png beside x.png,
    # or anything under an -o folder inside the input tree) are not inputs: a rerun must not re-process them.
    outputs = {os.path.abspath(t) for _, _, _, t in planned if t is not None}
    out_prefix = os.path.join(os.path.abspath(output), "") if output is not None and not single_file else None
    items: list[PlanItem] = []
    claimed: dict[Path, Path] = {}
    for source, root, problem, target in planned:
        if target is not None and os.path.abspath(target) == os.path.abspath(source):
            items.append(PlanItem(source, target, "failed", "the output would replace the input (change --name or -o)"))
            continue
        if root is not None and (os.path.abspath(source) in outputs
                                 or (out_prefix and os.path.abspath(source).startswith(out_prefix))):
            continue
        if problem:
            items.append(PlanItem(source, None, "failed", problem))
            continue
        key = Path(os.path.abspath(target))
        if key in claimed:
            items.append(PlanItem(source, target, "failed", f"same output {target} as {claimed[key]} "
                                                            "(use --name with {in_ext} to tell them apart)"))
            continue
        claimed[key] = source
        if target.exists() and not overwrite and not single_file:
            items.append(PlanItem(source, target, "skipped", "output exists"))
        else:
            items.append(PlanItem(source, target, make_folder=output is not None and not single_file))
    return items
