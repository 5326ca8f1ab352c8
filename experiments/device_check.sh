#!/usr/bin/env bash
# The prepared GPU check (issue 4) for a session that is lent a device machine: one call,
#
#     run(command="bash experiments/device_check.sh", timeout_s=480)
#
# at most 150 + 2 x 90 + 4 x 35 = 470 s of timeouts, usually about 4 minutes. The machine's
# python3 already has torch, typer, rich, imageio, safetensors, tqdm, pillow and pytest;
# hyperisp runs from the working tree (no install). Nothing here reads a raw file, so rawpy is
# not needed, and ../shared does not travel: training speed is measured
# on photos the script makes. Writes under $OUT (or /tmp/device_check):
#   env.txt                      torch, CUDA, GPU
#   pytest_cuda.txt              tests/test_cuda.py: fp32 tiles exact, fp16 close to the CPU, training
#   bench_{isp,denoise}_cuda.json  `hyperisp bench --device cuda` at 12 MP (MP/s, peak GPU memory)
#   train_speed.txt              it/s of the shipped architectures' training on the GPU
set -u
OUT=${OUT:-/tmp/device_check}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
# `timeout` runs programs, not shell functions: hyperisp is not installed there, so `python3 -m hyperisp`.

python3 -c "import torch; print(torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))" \
    2>&1 | tee "$OUT/env.txt"

timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/pytest_cuda.txt"

for model in isp denoise; do
    timeout 90 python3 -m hyperisp bench --model "$model" --device cuda --megapixels 12 --json \
        > "$OUT/bench_${model}_cuda.json" 2> "$OUT/bench_${model}_cuda.err"
    echo "bench $model: exit $?"
done

photos=$(mktemp -d)
python3 - "$photos" <<'EOF'
import sys
import numpy as np
from PIL import Image

rng = np.random.default_rng(0)
for i in range(24):  # textured 512x512 photos: the speed does not depend on their content
    yy, xx = np.mgrid[0:512, 0:512] / 512
    image = 0.5 + 0.3 * np.sin(40 * xx * rng.uniform(0.5, 2) + 30 * yy + np.arange(3)[:, None, None])
    image = image.transpose(1, 2, 0) + rng.normal(0, 0.05, (512, 512, 3))
    Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(f"{sys.argv[1]}/{i}.png")
EOF
for run in "isp --init isp --batch 8" "isp --init isp --batch 32" "denoise --init denoise --crop 96 --batch 8" \
           "denoise --init denoise --crop 96 --batch 32"; do
    # shellcheck disable=SC2086
    timeout 35 python3 -m hyperisp train $run --data "$photos" --out "$(mktemp -d)" --iters 200 --validate-every 1000 \
        --checkpoint-every 1000 --device cuda 2>&1 | tail -1 | sed "s|^|train $run: |" | tee -a "$OUT/train_speed.txt"
done
