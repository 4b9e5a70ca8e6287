"""``glm plugins``, ``glm backends`` and ``glm env``: what is installed and what it registered.

``glm env`` is what a bug report should include (LLaMA-Factory's ``env`` is the model).
Versions come from package metadata, so no graph framework is imported to list them.
"""

from __future__ import annotations

import argparse
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from glm.cli.common import add_backend_argument, print_json, resolve_backend_spec
from glm.core.train.ds_compat import SHM_DIR, SHM_PREFIX, leftover_shm_segments
from glm.plugins.manager import ENV_DISABLED, ENV_LOAD, ENV_STRICT, ENV_TRACE, get_registry, plugin_report
from glm.version import glm_version
from glm.plugins.registry import BackendSpec, Registry

# import name -> label shown by ``glm env`` (distribution names differ: gammagl-pt23, torch-geometric)
ENV_PACKAGES: tuple[str, ...] = (
    "torch", "torch_geometric", "gammagl", "tensorlayerx", "transformers", "deepspeed",
    "accelerate", "sentence_transformers", "pluggy", "numpy",
)
ENV_VARIABLES: tuple[str, ...] = (
    "GLM_BACKEND", ENV_DISABLED, ENV_LOAD, ENV_STRICT, ENV_TRACE, "TL_BACKEND",
    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "CUDA_VISIBLE_DEVICES", "GLM_CPU_ADAM", "TORCH_EXTENSIONS_DIR",
)


def add_commands(subparsers: Any) -> None:
    """Add ``plugins``, ``backends``, ``env`` and ``examples`` to the ``glm`` sub-parsers."""
    p = subparsers.add_parser("plugins", help="list plugins, what they registered and load errors (JSON)")
    p.add_argument("--hook", help="only plugins implementing this hook")
    p.set_defaults(func=cmd_plugins)

    p = subparsers.add_parser("backends", help="list graph backends, their GNN layers and availability")
    add_backend_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_backends)

    p = subparsers.add_parser("env", help="versions, devices and backends, for bug reports")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_env)

    p = subparsers.add_parser("examples", help="the example configs shipped with glm (--copy DIR to edit them)")
    p.add_argument("--copy", metavar="DIR", help="copy them into DIR (existing files are kept)")
    p.set_defaults(func=cmd_examples)


# -- glm examples -------------------------------------------------------------------------
def cmd_examples(args: argparse.Namespace) -> int:
    import shutil

    from glm.demo import examples_dir

    files = sorted(examples_dir().glob("*.yaml"))
    if not args.copy:
        print(examples_dir())
        for f in files:
            print(f"  {f.name}")
        return 0
    target = Path(args.copy)
    target.mkdir(parents=True, exist_ok=True)
    kept = [f.name for f in files if (target / f.name).exists()]
    for f in files:
        if f.name not in kept:
            shutil.copyfile(f, target / f.name)
    print(f"copied {len(files) - len(kept)} example configs to {target}"
          + (f" (kept existing: {', '.join(kept)})" if kept else ""))
    return 0


# -- glm plugins --------------------------------------------------------------------------
def cmd_plugins(args: argparse.Namespace) -> int:
    rows = plugin_report()
    if args.hook:
        rows = [r for r in rows if args.hook in r["hooks"]]
    print_json(rows)
    return 0


# -- glm backends -------------------------------------------------------------------------
def backend_info(registry: Registry, spec: BackendSpec) -> dict[str, Any]:
    """What ``glm backends`` / ``glm env`` say about one backend (no framework import)."""
    missing = spec.missing()
    return {
        "name": spec.name,
        "available": not missing,
        "missing": missing,
        "extra": spec.extra,
        "install": None if not missing else spec.install_hint(),
        "plugin": registry.owner("backends", spec.name),
        "description": spec.description,
        "gnn_layers": registry.layers_for(spec.name),
    }


def cmd_backends(args: argparse.Namespace) -> int:
    registry = get_registry()
    if args.backend:
        rows = [backend_info(registry, resolve_backend_spec(args.backend))]
    else:
        rows = [backend_info(registry, s) for s in registry.backends.values()]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no graph backend is registered")
    for row in rows:
        state = "installed" if row["available"] else f"not installed ({row['install']})"
        print(f"{row['name']}: {state}")
        print(f"  plugin: {row['plugin']}; gnn layers: {', '.join(row['gnn_layers']) or 'none'}")
        if row["description"]:
            print(f"  {row['description']}")
    return 0


# -- glm env ------------------------------------------------------------------------------
def package_versions(import_names: tuple[str, ...] = ENV_PACKAGES) -> dict[str, str | None]:
    """Installed version of each import name (``None``: not installed), from metadata only."""
    by_module = metadata.packages_distributions()
    versions: dict[str, str | None] = {}
    for name in import_names:
        version = None
        for dist in by_module.get(name, []):
            try:
                version = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        versions[name] = version
    return versions


def device_info() -> dict[str, Any]:
    """CPU count, RAM and CUDA devices (imports torch, a core dependency)."""
    import torch

    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpu_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_total_gib": _ram_gib("MemTotal"),
        "ram_available_gib": _ram_gib("MemAvailable"),
        "torch_cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [],
    }
    if info["cuda_available"]:
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            info["cuda_devices"].append({
                "index": i,
                "name": props.name,
                "memory_gib": round(props.total_memory / 2**30, 2),
                "capability": f"{props.major}.{props.minor}",
            })
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    count, size = leftover_shm_segments()
    info["dev_shm_deepspeed_segments"] = {"count": count, "gib": round(size / 2**30, 2)}
    return info


def _ram_gib(field: str) -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 2**20, 2)  # kB -> GiB
    except OSError:
        pass
    if field == "MemTotal" and hasattr(os, "sysconf"):
        try:
            return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 2)
        except (ValueError, OSError):
            return None
    return None


def git_commit(start: Path | None = None) -> str | None:
    """The commit of the glm checkout this code runs from (``None`` when installed from a
    wheel), read from ``.git`` without running git."""
    root = (start or Path(__file__).resolve().parents[2])
    git = root / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: <path>"
            git = (root / git.read_text().split(":", 1)[1].strip()).resolve()
        if not git.is_dir():
            return None
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        common = git / "commondir"
        base = (git / common.read_text().strip()).resolve() if common.is_file() else git
        for folder in (git, base):
            if (folder / ref).is_file():
                return (folder / ref).read_text().strip()
        packed = base / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
    except OSError:
        return None
    return None


def collect_env() -> dict[str, Any]:
    """Everything ``glm env`` reports."""
    registry = get_registry()
    return {
        "glm": {"version": glm_version(), "git_commit": git_commit(), "path": str(Path(__file__).resolve().parents[1])},
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "devices": device_info(),
        "backends": [backend_info(registry, s) for s in registry.backends.values()],
        "plugins": [
            {k: r[k] for k in ("name", "version", "status")} | ({"errors": r["errors"]} if r["errors"] else {})
            for r in plugin_report()
        ],
        "environment": {k: os.environ[k] for k in ENV_VARIABLES if k in os.environ},
    }


def cmd_env(args: argparse.Namespace) -> int:
    env = collect_env()
    if args.json:
        print_json(env)
        return 0
    commit = env["glm"]["git_commit"]
    lines = [f"- glm version: {env['glm']['version']}" + (f" (git {commit[:12]})" if commit else ""),
             f"- Platform: {env['platform']}", f"- Python version: {env['python']}"]
    lines += [f"- {name} version: {version or 'not installed'}" for name, version in env["packages"].items()]
    dev = env["devices"]
    lines.append(f"- CPU cores: {dev['cpu_usable']} usable of {dev['cpu_count']}; RAM: {dev['ram_total_gib']} GiB"
                 f" ({dev['ram_available_gib']} GiB available)")
    lines.append(f"- CUDA available: {dev['cuda_available']} (torch CUDA build: {dev['torch_cuda_build']})")
    shm = dev["dev_shm_deepspeed_segments"]
    if shm["count"]:
        lines.append(f"- /dev/shm: {shm['count']} DeepSpeed allreduce segment(s), {shm['gib']} GiB of RAM, left by"
                     " DeepSpeed processes (glm releases its own); when no DeepSpeed job runs:"
                     f" rm {SHM_DIR / SHM_PREFIX}*")
    lines += [f"- GPU {d['index']}: {d['name']}, {d['memory_gib']} GiB, compute {d['capability']}"
              for d in dev["cuda_devices"]]
    for b in env["backends"]:
        state = "available" if b["available"] else f"missing {', '.join(b['missing'])}: {b['install']}"
        lines.append(f"- backend {b['name']}: {state}; layers: {', '.join(b['gnn_layers']) or 'none'}")
    failed = [p for p in env["plugins"] if p.get("errors")]
    lines.append(f"- plugins: {len(env['plugins'])}" + (f" ({len(failed)} with errors, see `glm plugins`)" if failed else ""))
    lines += [f"- ${k}={v}" for k, v in env["environment"].items()]
    print("\n".join(lines))
    return 0

