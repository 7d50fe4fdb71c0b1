"""Reading cp_verify outputs into the tidy table: this checkout against a baseline checkout.

The reader gained type checks, null-vs-NaN masks and the flat merge-row rule;
this measures what they cost.  A synthetic LSSTCam tree (205 detectors, bias,
dark and flat, ``--days`` nights; Results as ``.parq``) is read by
``cpmosaic.metrics.load_metrics`` in fresh processes, alternately with this
checkout's ``src`` and with the baseline's (``--baseline``, default
/work/main/src), so both run in the same session on the same files.

    python benchmarks/bench_ingest.py [--days 2] [--repeat 3] [--baseline /work/main/src]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "src"
CODE = """
import sys, time
from cpmosaic.metrics import load_metrics
t = time.perf_counter()
df = load_metrics(sys.argv[1], progress=False)
print(time.perf_counter() - t, len(df))
"""


def read_once(src: Path, tree: Path) -> tuple[float, int]:
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run([sys.executable, "-c", CODE, str(tree)], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), int(out[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", type=Path, default=Path("/work/main/src"))
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from cpmosaic.synth import synthesize

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        m = synthesize(tmp, shrink=16, seed=1, n_days=args.days, raw=False, processed=False, calibs=False,
                       butler=False, profiles=True, progress=False)
        n_files = len(m.verify_files)
        times: dict[str, list[float]] = {"baseline": [], "this": []}
        rows = {}
        for _ in range(args.repeat):
            for name, src in (("baseline", args.baseline), ("this", HERE)):
                t, n = read_once(src, m.verify_root)
                times[name].append(t)
                rows[name] = n
    base, this = statistics.median(times["baseline"]), statistics.median(times["this"])
    load = os.getloadavg()[0]
    print(f"{n_files} files, {args.days} nights; rows: baseline {rows['baseline']}, this {rows['this']}")
    print(f"| reader | median s ({args.repeat} runs) | ratio |\n|---|---|---|")
    print(f"| baseline ({args.baseline}) | {base:.2f} | 1.00 |")
    print(f"| this checkout | {this:.2f} | {this / base:.2f} |")
    print(f"load average {load:.2f}")


if __name__ == "__main__":
    main()
