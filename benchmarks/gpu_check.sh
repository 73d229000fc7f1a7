#!/usr/bin/env bash
# GPU figures (issue 35): install the brought wheels, make flywheel importable, run gpu_check.py.
#
# Here, once, in the repository's root (the wheels and why each: gpu_check.py's docstring):
#   echo /.whl/ >> .git/info/exclude
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .whl trl==1.16.0 datasets==5.2.0 dill==0.4.1 \
#       multiprocess==0.70.19 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
#       typing-inspection==0.4.5
# On the GPU machine (the device tool: carry [".whl"], timeout_s 600; about 6 minutes on an H100):
#   bash benchmarks/gpu_check.sh .whl $OUT/gpu-check.json
#
# Usage: benchmarks/gpu_check.sh WHEEL_DIR OUT_JSON [gpu_check.py options, e.g. --budget-s 15]
# PYTHON names the interpreter (default python3, the one with PyTorch).
set -euo pipefail
wheels=${1:?usage: gpu_check.sh WHEEL_DIR OUT_JSON [options]}
out=${2:?usage: gpu_check.sh WHEEL_DIR OUT_JSON [options]}
shift 2
python=${PYTHON:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
site=${TMPDIR:-/tmp}/gpu-check-site

# 1. The wheels, into a folder of their own (nothing else is installed or upgraded).
"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site/lib" "$wheels"/*.whl

# 2. flywheel's rooms (llm/, sandbox/, ...) are the modules of one `flywheel` namespace
#    (pyproject's package-dir); link them under one folder instead of installing the project.
mkdir -p "$site/src/flywheel"
ln -sfn "$repo"/flywheel/* "$site/src/flywheel/"
for room in flows tasks evaluators warehouse sandbox llm pool; do
    ln -sfn "$repo/$room" "$site/src/flywheel/$room"
done
export PYTHONPATH="$site/src:$site/lib${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

# 3. The figures: one JSON line on stdout and in OUT_JSON.
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
"$python" "$repo/benchmarks/gpu_check.py" --out "$out" "$@"
