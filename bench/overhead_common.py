"""What the overhead benchmarks share (standard library only): reading a
process's CPU ticks and memory from /proc, starting a `loupe serve`, and
finding the release binary."""
import os
import subprocess
import sys
import time


def ticks(pid):
    """utime + stime of pid's own threads, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def status_kib(pid, key):
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM…), 0 when absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def start_server(loupe, data):
    """Starts `loupe serve` on a free port; returns (process, base URL)."""
    p = subprocess.Popen(
        [loupe, "serve", "--addr", "127.0.0.1:0", "--data", data],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")},
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        prefix = "loupe serve listening on "
        if line.startswith(prefix):
            return p, line[len(prefix):].strip()
    p.kill()
    sys.exit("loupe serve did not report its address")


def default_binary():
    """target/release/loupe (or under $CARGO_TARGET_DIR)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target")), "release", "loupe")
