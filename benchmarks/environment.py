"""What machine a benchmark ran on: recorded with every result."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from agegate.edge import __version__

ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8",
             "asimd", "asimddp", "sve", "neon")


def cpu_info() -> dict:
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, val = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "Hardware") and val.strip():
                model = val.strip()
            elif key in ("flags", "Features"):
                flags.update(val.split())
    return {"cpu_model": model, "cores": os.cpu_count(), "isa": sorted(f for f in ISA_FLAGS if f in flags),
            "machine": platform.machine()}


def environment(runtime: str = "", runtime_version: str = "", delegate: str = "") -> dict:
    return {**cpu_info(), "os": f"{platform.system()} {platform.release()}", "python": sys.version.split()[0],
            "runtime": runtime, "runtime_version": runtime_version, "delegate": delegate,
            "agegate_version": __version__, "hostname_hash": abs(hash(platform.node())) % 10**6}


def vm_mb(key: str) -> float:
    """VmRSS / VmHWM of this process in MB (/proc; VmHWM starts afresh at exec, unlike ru_maxrss, which a
    child inherits from the process that forked it)."""
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_fresh(code: str, timeout: float = 600) -> dict:
    """Run Python `code` in a fresh interpreter (its memory is its own) and parse the JSON object it prints
    last. A failure raises RuntimeError with the end of its stderr."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        tail = done.stderr.strip().splitlines()
        raise RuntimeError(tail[-1] if tail else f"exit status {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])
