"""Regenerate ``loot_pb2.py`` / ``loot_pb2_grpc.py`` / ``loot_pb2.pyi`` from ``loot.proto``.

``python -m lootlab.remote.codegen`` runs the installed ``grpcio-tools`` protoc and then
makes the import in the gRPC stub package-relative (protoc writes ``import loot_pb2``,
which only works with the output directory on ``sys.path``).  ``generate()`` returns the
text of each file so a test can compare it with what is checked in and fail when stale.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "loot.proto"
OUTPUTS = ("loot_pb2.py", "loot_pb2_grpc.py", "loot_pb2.pyi")


def generate() -> dict[str, str]:
    """Run protoc on ``loot.proto`` in a temp dir; return {file name: fixed-up text}."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # grpcio-tools is a test/dev dependency
        raise RuntimeError("grpcio-tools is not installed: pip install grpcio-tools") from exc
    import importlib.resources

    include = str(importlib.resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as out:
        code = protoc.main([
            "grpc_tools.protoc", f"-I{HERE}", f"-I{include}", f"--python_out={out}",
            f"--pyi_out={out}", f"--grpc_python_out={out}", str(PROTO),
        ])
        if code != 0:
            raise RuntimeError(f"protoc failed on {PROTO} (exit {code})")
        texts = {name: (Path(out) / name).read_text() for name in OUTPUTS}
    texts["loot_pb2_grpc.py"] = re.sub(r"^import loot_pb2 as", "from . import loot_pb2 as",
                                       texts["loot_pb2_grpc.py"], flags=re.M)
    return texts


_VERSION_STAMPS = [
    re.compile(r"^# Protobuf Python Version: .*$", re.M),
    re.compile(r"^_runtime_version\.ValidateProtobufRuntimeVersion\(.*?^\)$", re.M | re.S),
    re.compile(r"^GRPC_GENERATED_VERSION = .*$", re.M),
]


def normalize(text: str) -> str:
    """Generated text without the tool-version stamps, so only schema changes count."""
    for stamp in _VERSION_STAMPS:
        text = stamp.sub("", text)
    return text


def stale() -> list[str]:
    """Names of the generated files that differ from a fresh generation of the schema."""
    fresh = generate()
    return [name for name, text in fresh.items()
            if not (HERE / name).exists()
            or normalize((HERE / name).read_text()) != normalize(text)]


def main() -> int:
    for name, text in generate().items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
