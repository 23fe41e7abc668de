"""Writes a large offline spool with the Python SDK's own spool writer and
value encoders, for `loupe-bench spool --run-dir DIR`.

    python3 bench/sdk_spool.py DIR [LINES]   # default 1,000,000 lines (~480 MB)

Lines as a training loop's offline run makes them: metrics batches of two
steps of three series (loss, acc, lr), one line in 50 a log batch with its
idempotency key, the run's creation first and its final status last.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from loupe._spool import Spool  # noqa: E402
from loupe._values import name_json, steps_json, times_json, values_json  # noqa: E402

T0_NS = 1796671077_000_000_000
STEP_NS = 153_000_000


def metrics_body(steps):
    times = [T0_NS + k * STEP_NS for k in steps]
    columns = (
        ("loss", [2.0 / (1 + k * 1e-3) for k in steps]),
        ("acc", [(k % 1000) * 1e-3 for k in steps]),
        ("lr", [3e-4] * len(steps)),
    )
    parts = [
        b'{"name":' + name_json(name) + b',"step":' + steps_json(steps) + b',"time":' + times_json(times)
        + b',"value":' + values_json(vals) + b"}"
        for name, vals in columns
    ]
    return b'{"series":[' + b",".join(parts) + b"]}"


def main(argv):
    run_dir = argv[1]
    lines = int(argv[2]) if len(argv) > 2 else 1_000_000
    spool = Spool(run_dir, fsync_interval=1e9)
    spool.append("run", b'{"id":"sdkspool","project":"bench","name":"spool"}')
    step = 0
    for seq in range(2, lines):
        if seq % 50 == 0:
            text = b'{"records":[{"time":1796671077.4497986,"stream":"stdout","level":"info","text":"step %d"}]}' % step
            spool.append("logs", text, key="5e1f0c2a9b7d:%d" % seq)
            continue
        spool.append("metrics", metrics_body([step, step + 1]))
        step += 2
    spool.append("patch", b'{"status":"finished","exit_code":0}')
    spool.close()


if __name__ == "__main__":
    main(sys.argv)
