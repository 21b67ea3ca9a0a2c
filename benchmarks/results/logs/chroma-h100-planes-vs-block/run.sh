#!/usr/bin/env bash
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
S=$(date +%s); el() { echo "[$(( $(date +%s)-S ))s] $*"; }
F=/tmp/faast_photos_10240
python benchmarks/make_photo_folder.py $F --n 10240 --jobs 16 > /dev/null 2>&1; el folder
PYTHONPATH=$PWD timeout 40 python -m pytest tests/test_chroma.py -m gpu -q -p no:cacheprovider 2>&1 | tail -2; el chroma-tests
PYTHONPATH=$PWD OUT=$OUT NF=256 timeout 45 python scratch/chroma_cmp.py (here chroma_cmp.py.txt, with chroma_block.py.txt beside it) $F 2>&1 | grep "^{" | tail -1; el cmp
run() {
  local tree=$1 out=$2 dl=$3; shift 3
  timeout $((dl + 30)) python $tree/benchmarks/bench_image_folder.py --folder $F --n-images 10240 --device cuda \
    --batch-size 256 --workers 16 --repeats 1 --models vit_base_patch16_224 --no-compile \
    --deadline $dl --out-dir $OUT/$out --steps "$@" > $OUT/$out.log 2>&1
  grep " = " $OUT/$out.log | sed 's/^/  /'; el $out
}
run . new 70 decode_tensor_only decode_auto_only fit_folder timm_loader
run .tens tens 35 fit_folder
PYTHONPATH=$PWD timeout 40 python -m pytest tests -m gpu -q -p no:cacheprovider -x 2>&1 | tail -2; el gputests
