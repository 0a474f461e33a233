#!/bin/bash
# Pretraining throughput on a GPU machine: SimCLR on bench_recipe.py's two unlabelled pools (3,000
# synthetic cars, -e 100 without mirrors; the 59,500 Fashion-MNIST pool, as many epochs as BUDGET
# seconds leave), each run through benchmarks/bench_pretrain.py, which appends its images/s (each
# epoch's log line), fit and wall seconds to benchmarks/results/pretrain.jsonl. From the repository root:
#
#     OUT=pretrained/ bash benchmarks/pretrain_gpu.sh
#
# It needs lightly (pip install 'perspective[pretrain]') and, for Fashion, Debian's dataset-fashion-mnist
# (apt-get install dataset-fashion-mnist). The backbones (OUT/cars.ckpt, OUT/fashion.ckpt, for train's
# --weights) and the logs go to OUT; the pools are made once in W (default OUT/work) and kept.
# Knobs: CARS_E (0 skips cars), FASHION_E (default: what BUDGET leaves), BUDGET (seconds, default 540),
# WORKERS (loader processes, default every core but one), FASHION_LIMIT (pool photos kept, for a short
# trial), RESUME=1 (continue the Fashion run from its last checkpoint in W), RESULTS (another results file).
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
T0=$(date +%s)
CARS_E=${CARS_E:-100}; BUDGET=${BUDGET:-540}; WORKERS=${WORKERS:-$(( $(nproc) - 1 ))}
OUT=${OUT:?set OUT to a folder for the logs and backbones}; mkdir -p "$OUT"
W=${W:-$OUT/work}; mkdir -p "$W"
bench() {  # name, bench_pretrain.py flags...
  local name=$1; shift
  python3 benchmarks/bench_pretrain.py --pool "$name" --workdir "$W" -o "$OUT/$name.ckpt" \
    ${RESULTS:+--results "$RESULTS"} "$@" 2>&1 | grep -v -i warn | tee "$OUT/$name.log"
}
python3 -c "
import sys
from pathlib import Path
from benchmarks.bench_pretrain import pool_folder
for name in sys.argv[2:]:
    pool_folder(name, Path(sys.argv[1]), None)
" "$W" $([ "$CARS_E" -gt 0 ] && echo cars) fashion || exit 1
if [ "$CARS_E" -gt 0 ]; then
  bench cars --flags="-e $CARS_E --hflip-prob 0 -w $WORKERS" || exit 1
fi
if [ -n "${FASHION_E:-}" ]; then
  FE=$FASHION_E
elif [ "$CARS_E" -gt 0 ]; then  # from the cars rate: a 28 px PNG costs the loader about 0.6 of a car photo
  FE=$(python3 -c "
import sys
from benchmarks import store
rate = store.read('pretrain', sys.argv[1] or None)[-1]['figures']['images_per_s'] / 0.6
left = $BUDGET - ($(date +%s) - $T0) - 45
print(max(1, min(40, int(left * rate / ${FASHION_LIMIT:-59500}))))" "${RESULTS:-}") || exit 1
else
  echo "set FASHION_E when CARS_E=0 (the epochs follow from the cars run's rate)" >&2; exit 2
fi
echo "fashion: -e $FE"
bench fashion --flags="-e $FE -w $WORKERS${RESUME:+ --resume}" ${FASHION_LIMIT:+--limit $FASHION_LIMIT} || exit 1
echo "total $(( $(date +%s) - T0 )) s"
