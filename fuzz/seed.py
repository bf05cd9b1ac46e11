#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/ from the repository's own inputs.

Seeds are the fixtures (dev.list, /proc/devices, attribute files), the example bundles and
golden plans (compile), the CDI golden specs (cdi) and one call per row of the family tables
in every mode (decide; the TPU probe's calls are rows of these tables). Targets that take an
`arbitrary` structure get the bytes that select it: compile's `Input::Json(host, bytes)` is a
zero u32 variant tag, a host byte and the JSON; cdi's `(u8, &[u8])` is a host byte and the
spec. Run from the repository root: python3 fuzz/seed.py
"""
import hashlib
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def put(target, data):
    out = CORPUS / target
    out.mkdir(parents=True, exist_ok=True)
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)


fixtures = sorted((ROOT / "fixtures" / "sysfs").iterdir())
for fixture in fixtures:
    if (fixture / "dev.list").exists():
        put("dev_list", (fixture / "dev.list").read_bytes())
    if (fixture / "proc" / "devices").exists():
        put("proc_devices", (fixture / "proc" / "devices").read_bytes())

# compile: every example bundle against a few hosts, and the golden plans as near-miss JSON.
for config in sorted(ROOT.glob("examples/*/config.json")):
    for host in (0, 9):
        put("compile", struct.pack("<IB", 0, host) + config.read_bytes())
for plan in sorted((ROOT / "tests" / "golden" / "plan").glob("*.json"))[:1]:
    put("compile", struct.pack("<IB", 0, 0) + plan.read_bytes())

for host, spec in enumerate(sorted((ROOT / "tests" / "golden" / "cdi").glob("*.json"))):
    put("cdi", bytes([host]) + spec.read_bytes())

# host: builder operations are chosen by the fuzzer; the seeds give it attribute text and
# names from the fixtures to work with.
for fixture in fixtures:
    texts = []
    for path in sorted((fixture / "sys").rglob("*")):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 256:
            texts.append(path.name.encode() + b"\0" + path.read_bytes())
    put("host", b"".join(texts)[:4096])

# decide: family, kind, RequestChoice::Row(index), the request's upper half, a pointer to the
# memory, a raw argument, 64 bytes of memory, then mode, simulated and arch.
for family in range(2):
    for row in range(64):
        for mode in range(3):
            call = bytes([family, row % 4]) + struct.pack("<IHI", 0, row, 0)
            call += b"\x01" + struct.pack("<HQ", 0, 1) + bytes(range(64)) + bytes([mode, 0, row & 1])
            put("decide", call + b"\x40")
