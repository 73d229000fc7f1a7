"""flywheel: an Arena-Learning data flywheel for LLM post-training (see docs/ARCHITECTURE.md).

Every `flywheel.*` import runs this first, so the setting below is in place before torch loads
its OpenMP runtime, which reads it once; the launcher's ranks and served students inherit it.
"""

import os

# Waiting OpenMP threads sleep instead of spinning. On a loaded 2-core machine spinning threads
# made 2 torch threads 2-10x slower than 1 (benchmarks/bench_threads.py); it does not change
# results (only how threads wait). A value the user set stays.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
