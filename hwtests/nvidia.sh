#!/usr/bin/env bash
# On-hardware validation of NVIDIA GPUs behind accelgate's ioctl gate. Opt-in, never run in CI:
# run it as root on a host with an NVIDIA GPU, its driver and nvidia-smi, from the repository:
#
#   sudo hwtests/nvidia.sh                  # everything below
#   CUDA_SAMPLE=/path/to/vectorAdd sudo hwtests/nvidia.sh
#
# 1. discovery (`accelgate discover --json`) against `nvidia-smi`: the same GPUs, PCI addresses
#    and UUIDs, in the same order, and the driver version the gate's tables are chosen by;
# 2. examples/nvidia-probe's CUDA start-up on the real driver, in enforce mode;
# 3. `nvidia-smi`, then a CUDA program (PyTorch's torch.cuda matmul where python3 has torch, else
#    $CUDA_SAMPLE) inside `accelgate run` on the host's own filesystem (read-only, with an
#    in-memory overlay), first under --policy audit (the list of every escape, UVM command, RM
#    control and class they used, and what enforce would refuse), then under enforce;
# 4. the per-call cost: the probe's RM_CONTROL and RM_FREE timed outside and inside the gate.
#
# Exit status 0 when every step passed. ACCELGATE_REQUIRE_HW=1 makes a missing GPU a failure
# instead of a skip. Output is also kept in hwtests/out/nvidia-<date>/.
set -uo pipefail
cd "$(dirname "$0")/.."

skip() {
    echo "SKIPPED: $*"
    if [ "${ACCELGATE_REQUIRE_HW:-0}" = 1 ]; then exit 1; fi
    exit 0
}
[ "$(id -u)" -eq 0 ] || { echo "hwtests/nvidia.sh: run as root" >&2; exit 2; }
command -v nvidia-smi >/dev/null || skip "no nvidia-smi on this host"
nvidia-smi -L >/dev/null 2>&1 || skip "nvidia-smi finds no GPU"

out="hwtests/out/nvidia-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
failed=0
step() { echo; echo "=== $*"; }
fail() { echo "FAIL: $*"; failed=1; }

cargo build --release --quiet || { echo "cargo build failed" >&2; exit 1; }
accelgate="$PWD/target/release/accelgate"
scripts/setup >/dev/null || { echo "scripts/setup failed" >&2; exit 1; }

step "1. discovery against nvidia-smi"
"$accelgate" discover --json >"$out/discovery.json" || fail "accelgate discover"
nvidia-smi --query-gpu=index,pci.bus_id,uuid,driver_version --format=csv,noheader \
    >"$out/nvidia-smi.csv"
python3 - "$out/discovery.json" "$out/nvidia-smi.csv" <<'PY' || fail "discovery differs from nvidia-smi"
import json, sys
found = json.load(open(sys.argv[1]))
gpus = found.get("gpus", [])
smi = [l.split(", ") for l in open(sys.argv[2]).read().splitlines() if l.strip()]
ok = len(gpus) == len(smi)
for gpu, (index, bus, uuid, version) in zip(gpus, smi):
    same = (str(gpu["index"]) == index and gpu["bdf"].lower() == bus.lower()[-12:]
            and gpu.get("uuid") == uuid)
    print(f"  {index} {bus} {uuid}: {'same' if same else 'DIFFERENT: ' + json.dumps(gpu)}")
    ok &= same
driver = (found.get("nvidia") or {}).get("driver_version")
print(f"  driver: accelgate {driver}, nvidia-smi {smi[0][3] if smi else '?'}")
ok &= bool(smi) and driver == smi[0][3]
sys.exit(0 if ok else 1)
PY
"$accelgate" nvidia versions | grep -q "^$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1) .*supported" \
    || echo "note: this driver version is not a supported one; the runs below will be refused (add it: docs/nvidia.md)"

# A bundle on the host's own root (read-only; an in-memory overlay takes the writes), asking
# for every GPU as nvidia-docker does.
bundle="$out/bundle"
mkdir -p "$bundle"
cat >"$bundle/config.json" <<JSON
{
  "ociVersion": "1.0.2",
  "process": {
    "user": {"uid": 0, "gid": 0},
    "args": ["nvidia-smi"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
            "HOME=/root"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"],
      "effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"],
      "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"]
    },
    "noNewPrivileges": true
  },
  "root": {"path": "/", "readonly": true},
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "nodev", "mode=1777"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
    {"destination": "/nvidia-probe", "type": "bind", "source": "$PWD/examples/nvidia-probe/nvidia-probe", "options": ["bind", "ro"]}
  ],
  "hooks": {"prestart": [{"path": "/usr/bin/nvidia-container-runtime-hook", "args": ["nvidia-container-runtime-hook", "prestart"]}]},
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
    "maskedPaths": ["/proc/kcore", "/proc/keys"],
    "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
  }
}
JSON
run() { # run POLICY NAME CMD...: under the gate, with its counts
    local policy=$1 name=$2
    shift 2
    "$accelgate" run --bundle "$bundle" --overlay memory --policy "$policy" --stats -- "$@" \
        >"$out/$name.$policy.out" 2>"$out/$name.$policy.err"
    local status=$?
    echo "  $name, $policy: exit $status"
    tail -n 40 "$out/$name.$policy.err" | sed 's/^/    /'
    return $status
}

step "2. the probe's CUDA start-up on the real driver (enforce)"
run enforce probe /nvidia-probe startup || fail "nvidia-probe startup"
grep -E "UNEXPECTED" "$out/probe.enforce.out" && fail "the probe saw unexpected answers"

step "3. nvidia-smi and CUDA under audit, then enforce"
cuda=()
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    cuda=(python3 -c 'import torch; a = torch.randn(2048, 2048, device="cuda"); print("matmul", (a @ a).sum().item())')
elif [ -n "${CUDA_SAMPLE:-}" ]; then
    cuda=("$CUDA_SAMPLE")
else
    echo "  no PyTorch with CUDA and no \$CUDA_SAMPLE: the CUDA program is skipped"
fi
for policy in audit enforce; do
    run "$policy" nvidia-smi nvidia-smi || fail "nvidia-smi under $policy"
    if [ "${#cuda[@]}" -gt 0 ]; then
        run "$policy" cuda "${cuda[@]}" || fail "the CUDA program under $policy"
    fi
done
echo "  what enforce refuses (from the audit runs):"
grep -h "unknown to the tables\|audited" "$out"/*.audit.err | sort | uniq -c | sed 's/^/    /'

step "4. per-call cost"
examples/nvidia-probe/nvidia-probe bench 20000 | tee "$out/bench.host" | sed 's/^/  outside: /'
run enforce bench /nvidia-probe bench 20000 >/dev/null
sed 's/^/  gated:   /' "$out/bench.enforce.out"

echo
if [ "$failed" = 0 ]; then echo "hwtests/nvidia.sh: all steps passed ($out)"; else echo "hwtests/nvidia.sh: FAILED ($out)"; fi
exit "$failed"
