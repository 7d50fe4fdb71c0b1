"""Start-up of ``cpmosaic mosaic``: run the command in this process and stop where the shard
tasks would start, after loading the build's kernels; print wall and CPU seconds.

Used by ``bench_mosaic.py --startup N`` (one fresh process per measurement)::

    python benchmarks/startup_probe.py STORE INPUT... [-- more mosaic options]
"""

from __future__ import annotations

import importlib
import os
import sys
import time

W0, C0 = time.perf_counter(), time.process_time()


def main() -> None:
    store, files = sys.argv[1], sys.argv[2:]
    cli = importlib.import_module("cpmosaic.cli.main")
    build = importlib.import_module("cpmosaic.mosaic.build")

    def stop(*args, **kwargs):
        import numpy as np

        from cpmosaic.kernels import bin_rotate_into, pyramid_reduce

        out = np.empty((2, 2), np.float32)  # the kernels a float32 build starts with
        bin_rotate_into(np.zeros((16, 16), ">f4"), 8, 0, out, 0, 0)
        pyramid_reduce(out)
        sys.stdout.write(f"STARTUP {time.perf_counter() - W0:.4f} {time.process_time() - C0:.4f}\n")
        sys.stdout.flush()
        os._exit(0)

    build.run_graph = stop
    cli.main(["-q", "mosaic", *files, "-o", store, "--binning", "8", "--overwrite", "--no-progress"])
    raise SystemExit("the build ended before its shard tasks")


if __name__ == "__main__":
    main()
