#!/bin/bash
# Pretraining throughput on a GPU machine: SimCLR on bench_recipe.py's two unlabelled pools (3,000
# synthetic cars, -e 100 without mirrors; the 59,500 Fashion-MNIST pool, as many epochs as BUDGET
# seconds leave), images/s in each epoch's log line. Run from the repository root:
#
#     OUT=results/ bash benchmarks/pretrain_gpu.sh
#
# It needs Fashion-MNIST in /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist) or in
# .dev/fashion/, and lightly importable or as a wheel in .dev/whl/ (for a machine without an index).
# The backbones are written to $OUT as fp16 in 15 MB parts (OUT's files come back from a lent machine
# only in such parts); join them and cast back to float32 to fine-tune. Knobs for a dry run on a CPU:
# CARS_E, FASHION_LIMIT (pool images kept), BUDGET (seconds), WORKERS (loader processes).
# A longer Fashion run over two calls of a lent machine (each at most 10 minutes; W stays while it is warm):
#
#     CARS_E=0 FASHION_E=35 OUT=results/ timeout 560 bash benchmarks/pretrain_gpu.sh   # stopped, last.ckpt kept
#     CARS_E=0 FASHION_E=35 RESUME=1 OUT=results/ bash benchmarks/pretrain_gpu.sh      # the rest, then the parts
set -o pipefail
export PYTHONUNBUFFERED=1
T0=$(date +%s)
CARS_E=${CARS_E:-100}; BUDGET=${BUDGET:-540}; WORKERS=${WORKERS:-$(( $(nproc) - 1 ))}
OUT=${OUT:?set OUT to a folder for the logs and backbones}; mkdir -p "$OUT"
if [ -d .dev/whl ] && ! python3 -c "import lightly" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .dev/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
[ -d /usr/share/datasets/fashion-mnist ] || { mkdir -p /usr/share/datasets/fashion-mnist && cp .dev/fashion/*.gz /usr/share/datasets/fashion-mnist/; }
nvidia-smi -L 2>/dev/null; nproc
python3 -c "import torch, torchvision, pytorch_lightning, lightly; print(torch.__version__, torchvision.__version__, pytorch_lightning.__version__, lightly.__version__)"
W=${W:-/tmp/pretrain_gpu}; mkdir -p $W
[ -f $W/data/ready ] || python3 -c "
import sys, time
from pathlib import Path
from benchmarks.bench_recipe import make_cars, make_fashion
w, limit = Path(sys.argv[1]), int(sys.argv[2])
t = time.time(); make_fashion(w / 'data/fashion'); print('fashion data', round(time.time() - t, 1), 's')
if limit:
    for f in sorted((w / 'data/fashion/pool').iterdir())[limit:]:
        f.unlink()
t = time.time(); make_cars(w / 'data/cars'); print('cars data', round(time.time() - t, 1), 's')
(w / 'data/ready').touch()
" $W ${FASHION_LIMIT:-0} 2>&1 | tee $OUT/data.log
run() {  # name, data, flags...
  local name=$1 data=$2; shift 2
  local start=$(date +%s.%N)
  python3 -m perspective pretrain -d $data -o $W/$name.ckpt --image-size 64 -w $WORKERS -c $W/ckpt \
    --logs-location $W/logs "$@" 2>&1 | grep -v -i warn | tee $OUT/$name.log
  echo "$name wall $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s" | tee -a $OUT/$name.log
  [ -f $W/$name.ckpt ] && python3 -c "
import io, sys, torch
d = torch.load(sys.argv[1], map_location='cpu', weights_only=False)
d['state_dict'] = {k: (v.half() if v.is_floating_point() else v) for k, v in d['state_dict'].items()}
buf = io.BytesIO(); torch.save(d, buf); b = buf.getvalue(); part = 15 * 2**20
for i in range(0, len(b), part):
    open(f'{sys.argv[2]}.fp16.part{i // part}', 'wb').write(b[i:i + part])
print('saved', len(b), 'bytes')
" $W/$name.ckpt $OUT/$name
}
c0=$(date +%s)
[ "$CARS_E" -gt 0 ] && run cars $W/data/cars/pool -e $CARS_E --hflip-prob 0
c1=$(date +%s)
pool=$(ls $W/data/fashion/pool | wc -l)
if [ -n "${FASHION_E:-}" ]; then
  FE=$FASHION_E
else  # Fashion's epochs from the cars rate: a 28 px PNG costs the loader about 0.6 of a car photo.
  FE=$(python3 -c "
ips = $(ls $W/data/cars/pool | wc -l) * $CARS_E / max($c1 - $c0, 1) / 0.6
left = $BUDGET - ($c1 - $T0) - 45
print(max(1, min(40, int(left * ips / $pool))))")
fi
echo "fashion: $pool images, -e $FE (cars ran $((c1 - c0)) s)"
run fashion $W/data/fashion/pool -e $FE ${RESUME:+--resume}
echo "total $(( $(date +%s) - T0 )) s"
