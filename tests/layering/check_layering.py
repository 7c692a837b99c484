#!/usr/bin/env python3
"""Fails when a library includes a header from a library that may not depend on it.

The dependency direction is docs/ARCHITECTURE.md's: base <- config/store/device <- comm <- model <-
zero <- apps. Two finer rules keep the launcher free of Gloo and the engine: lib/launch and
apps/launcher may use from lib/zero only the headers of ds_zero_plan (PLAN below, the sources
lib/zero/CMakeLists.txt lists for that target), and ds_zero_plan's own files include no engine header.
Usage: check_layering.py <repository root>. Exit 0 clean, 1 with one line per violation.
"""
import pathlib
import re
import sys

ALLOWED = {
    "base": {"base"},
    "config": {"base", "config"},
    "store": {"base", "store"},
    "device": {"base", "device"},
    "comm": {"base", "config", "store", "device", "comm"},
    "model": {"base", "config", "device", "model"},
    "zero": {"base", "config", "store", "device", "comm", "model", "zero"},
    "launch": {"base", "config", "store", "launch", "zero"},
}
APPS = {
    "launcher": {"base", "config", "store", "launch", "zero"},
    "worker": {"base", "config", "store", "device", "comm", "model", "zero", "launch"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([A-Za-z0-9_./]+)"', re.M)


def plan_headers(root):
    """The ds_zero_plan sources, read from lib/zero/CMakeLists.txt, plus header-only neighbours."""
    text = (root / "lib/zero/CMakeLists.txt").read_text()
    match = re.search(r"set\(ds_zero_plan_sources([^)]*)\)", text)
    if not match:
        raise SystemExit("check_layering: lib/zero/CMakeLists.txt no longer sets ds_zero_plan_sources")
    stems = {pathlib.Path(s).stem for s in match.group(1).split()}
    header_only = {p.stem for p in (root / "lib/zero").glob("*.hpp")
                   if not (root / "lib/zero" / (p.stem + ".cpp")).exists()
                   and not (root / "lib/zero" / (p.stem + ".cu")).exists()}
    return stems, header_only


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    plan, header_only = plan_headers(root)
    problems = []

    def check(path, allowed, zero_plan_only):
        for lib, header in INCLUDE.findall(path.read_text(errors="replace")):
            rel = path.relative_to(root)
            if lib not in allowed:
                problems.append(f"{rel}: includes {lib}/{header}, but lib/{lib} may not be a dependency here")
            elif lib == "zero" and zero_plan_only:
                stem = pathlib.Path(header).stem
                if stem not in plan and stem not in header_only:
                    problems.append(f"{rel}: includes zero/{header}, which is not part of ds_zero_plan "
                                    "(the launcher must not link the engine)")
            elif lib == "zero" and stem_is_engine(path, header, plan, header_only):
                problems.append(f"{rel}: a ds_zero_plan file includes the engine header zero/{header}")

    def stem_is_engine(path, header, plan, header_only):
        if path.parent != root / "lib/zero" or path.stem not in plan:
            return False
        stem = pathlib.Path(header).stem
        return stem not in plan and stem not in header_only

    for folder, allowed in ALLOWED.items():
        for path in sorted((root / "lib" / folder).rglob("*.[ch]*")):
            check(path, allowed, zero_plan_only=(folder == "launch"))
    for folder, allowed in APPS.items():
        for path in sorted((root / "apps" / folder).glob("*.[ch]*")):
            check(path, allowed, zero_plan_only=(folder == "launcher"))
    unknown = sorted(p.name for p in (root / "lib").iterdir() if p.is_dir() and p.name not in ALLOWED)
    for name in unknown:
        problems.append(f"lib/{name}: a library folder with no row in tests/layering/check_layering.py")
    for line in problems:
        print(line)
    if not problems:
        print(f"layering: {len(ALLOWED)} libraries and {len(APPS)} apps follow docs/ARCHITECTURE.md")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
