"""Pinned accelerator installs: write requirements-{cuda12,cuda13,tpu}.lock, or check that they resolve.

Each lock holds the pins that `jax[<extra>]` adds to requirements.lock (plugin, PJRT and CUDA / libtpu
wheels), resolved by pip from the registry with the CPU lock as constraints. `--check` (CI) resolves
`pip install --dry-run -r requirements.lock -r requirements-<extra>.lock` (metadata only, no
multi-GB download) and fails unless pip picks exactly the pinned versions.
Usage: python .ci/accelerator_locks.py [--write | --check] [--pip PATH]
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU_LOCK = ROOT / "requirements.lock"
EXTRAS = ("cuda12", "cuda13", "tpu")


def lock_path(extra: str) -> Path:
    return ROOT / f"requirements-{extra}.lock"


def pinned(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if match:
            pins[_norm(match.group(1))] = match.group(2)
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(pip: str, requirements: list[str]) -> dict[str, str]:
    """{package: version} pip would install for these requirement arguments (dry run, metadata only)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [pip, "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report), *requirements]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        install = json.loads(report.read_text())["install"]
    return {_norm(item["metadata"]["name"]): item["metadata"]["version"] for item in install}


def write(pip: str, extra: str, jax_version: str) -> None:
    cpu = pinned(CPU_LOCK)
    resolved = resolve(pip, ["-c", str(CPU_LOCK), f"jax[{extra}]=={jax_version}"])
    added = {name: version for name, version in sorted(resolved.items()) if name not in cpu}
    header = (f"# jax[{extra}]=={jax_version} on top of requirements.lock, written by .ci/accelerator_locks.py --write.\n"
              f"# Install: pip install -r requirements.lock -r {lock_path(extra).name}\n")
    lock_path(extra).write_text(header + "".join(f"{n}=={v}\n" for n, v in added.items()))
    print(f"wrote {lock_path(extra).name}: {len(added)} pins")


def check(pip: str, extra: str) -> bool:
    want = {**pinned(CPU_LOCK), **pinned(lock_path(extra))}
    got = resolve(pip, ["-r", str(CPU_LOCK), "-r", str(lock_path(extra))])
    wrong = {n: (want.get(n), v) for n, v in got.items() if want.get(n) != v}
    status = "ok" if not wrong else f"differs from the pins: {wrong}"
    print(f"{lock_path(extra).name}: {len(got)} packages resolve from the registry; {status}")
    return not wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--pip", default=str(Path(sys.executable).parent / "pip"))
    args = parser.parse_args()
    jax_version = pinned(CPU_LOCK)["jax"]
    if args.write:
        for extra in EXTRAS:
            write(args.pip, extra, jax_version)
        return 0
    return 0 if all([check(args.pip, extra) for extra in EXTRAS]) else 1


if __name__ == "__main__":
    sys.exit(main())
