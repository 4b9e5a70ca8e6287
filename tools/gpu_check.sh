#!/usr/bin/env bash
# The GPU check on a box without network: install the wheelhouse (`make wheelhouse`, copied with the
# checkout) into a folder beside the box's own packages (pip --target, no venv, no build tools needed),
# then run `glm devcheck` from this checkout.
#   tools/gpu_check.sh [OUT_DIR] [devcheck options...]     e.g. tools/gpu_check.sh gpu-check --budget 540
# Environment: PYTHON (default python3), WHEELHOUSE (default .wheelhouse), SITE (default .gpu-site).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-devcheck}; shift || true
PY=${PYTHON:-python3}
WH=${WHEELHOUSE:-.wheelhouse}
SITE=${SITE:-.gpu-site}
[ -d "$WH" ] || { echo "gpu_check: no wheelhouse at $WH (run 'make wheelhouse' where there is network)" >&2; exit 2; }
t0=$(date +%s)
"$PY" -m pip install --quiet --no-index --no-deps --upgrade --target "$SITE" "$WH"/*.whl
echo "gpu_check: $(ls "$WH" | wc -l) wheels into $SITE in $(( $(date +%s) - t0 )) s" >&2
export PYTHONPATH="$PWD:$PWD/$SITE${PYTHONPATH:+:$PYTHONPATH}"
export TL_BACKEND=torch HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$PWD/$SITE/torch_extensions}
# DeepSpeed's CPU ops (CPU-Adam for the offload recipes, shm comm) JIT-build once, here, bounded:
# a build killed half-way by a step's timeout would leave a lock behind that stalls every later step
t1=$(date +%s)
timeout 420 "$PY" -m glm.core.train.ds_compat >&2 || echo "gpu_check: DeepSpeed op build did not finish (see above)" >&2
echo "gpu_check: DeepSpeed ops ready in $(( $(date +%s) - t1 )) s" >&2
exec "$PY" -m glm devcheck --out "$OUT" "$@"
