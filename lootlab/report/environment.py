"""The machine and software a report was measured on, so numbers are never read without it."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .. import noise as machine_noise

# Packages whose versions change the numbers (or the report) in a visible way.
PACKAGES = ("lootlab", "numpy", "pandas", "pyarrow", "scipy", "grpcio", "protobuf",
            "hdrhistogram", "py-spy", "memray", "matplotlib", "moto", "boto3",
            "papermill", "nbconvert", "ipykernel")


@dataclass
class Environment:
    """Facts about one report run; ``rows()`` gives them as (label, value) pairs for tables."""

    cpu: str
    cores: int
    usable_cores: int
    memory_gib: float
    python: str
    platform: str
    packages: dict[str, str]
    git_commit: str
    size: str          # the report size (quick, standard, full)
    date: str
    page_cache: str
    extra: dict[str, str] = field(default_factory=dict)
    # the machine sampled at the start of the report run and, once ``finish()``, at its end
    noise: machine_noise.NoiseCheck | None = None

    def finish(self) -> None:
        """Take the end-of-run sample, so the table shows how busy the machine was after."""
        if self.noise is not None:
            self.noise = machine_noise.finish(self.noise)

    def noise_rows(self) -> list[tuple[str, str]]:
        """The machine's load at the start and end, and whether the run was noisy."""
        check = self.noise
        if check is None:
            return []
        rows = [("machine at start", check.before.describe(check.baseline_ms))]
        if check.after is not None:
            rows.append(("machine at end", check.after.describe(check.baseline_ms)))
        rows.append(("noise", str(check)))
        return rows

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs, what the index and every page's footer state."""
        rows = [
            ("CPU", self.cpu),
            ("cores", f"{self.cores} ({self.usable_cores} usable by this process)"),
            ("memory", f"{self.memory_gib:.1f} GiB"),
            ("Python", self.python),
            ("platform", self.platform),
            ("git commit", self.git_commit),
            ("report size", self.size),
            ("date (UTC)", self.date),
            ("page cache", self.page_cache),
        ]
        rows += self.noise_rows()
        rows += list(self.extra.items())
        rows.append(("packages", ", ".join(f"{k} {v}" for k, v in self.packages.items())))
        return rows

    def to_dict(self) -> dict:
        doc = asdict(self)
        doc["noise"] = self.noise.to_dict() if self.noise is not None else None
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> "Environment":
        """The environment a run directory's manifest recorded: a page drawn again from a
        stored run states the machine it was measured on, not the one drawing it."""
        fields = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc and k != "noise"}
        noise = doc.get("noise")
        return cls(**fields, noise=machine_noise.NoiseCheck.from_dict(noise) if noise else None)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(repo: Path | None = None) -> str:
    """HEAD of the checkout lootlab runs from, with ``-dirty`` when files differ from it."""
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo,
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + ("-dirty" if dirty else "")


def page_cache_residency(path: str | Path) -> float | None:
    """Fraction of ``path``'s pages in the page cache (mincore), None when it can't be told.

    Mapping the file is not reading it: mincore only reports residency, it faults nothing in.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if size == 0:
        return None
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    page = mmap.PAGESIZE
    pages = (size + page - 1) // page
    with open(path, "rb") as handle:
        mm = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY)
        try:
            buf = (ctypes.c_char * size).from_buffer(mm)
            try:
                vec = (ctypes.c_ubyte * pages)()
                libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
                rc = libc.mincore(ctypes.addressof(buf), ctypes.c_size_t(size), vec)
                if rc != 0:
                    return None
                resident = sum(b & 1 for b in vec)
            finally:
                del buf
        finally:
            mm.close()
    return resident / pages


def describe_page_cache(path: str | Path) -> str:
    frac = page_cache_residency(path)
    if frac is None:
        return f"cold (no index at {path} yet; it is built on first use)"
    state = "warm" if frac >= 0.9 else "cold" if frac <= 0.1 else "partly warm"
    return f"{state}: {frac:.0%} of {Path(path).name} resident at start"


def collect(size: str, *, index_path: str | Path | None = None,
            extra: dict[str, str] | None = None) -> Environment:
    """Everything the index page and each report footer state about this run."""
    from ..paths import default_index_path

    index_path = Path(index_path) if index_path else default_index_path()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return Environment(
        cpu=cpu_model(),
        cores=os.cpu_count() or 1,
        usable_cores=usable,
        memory_gib=memory_gib(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        platform=platform.platform(),
        packages=package_versions(),
        git_commit=git_commit(),
        size=size,
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        page_cache=describe_page_cache(index_path),
        extra=dict(extra or {}),
        noise=machine_noise.start(),
    )
