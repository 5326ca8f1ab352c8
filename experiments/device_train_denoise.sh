#!/usr/bin/env bash
# GPU training of the wider denoiser (issue 3) for a session lent a device machine.
#
# Here, once (copies 42 MB of training photos into the git-ignored runs/gpu_data):
#     bash experiments/device_train_denoise.sh --pack
# Then one call, the session's first on the device:
#     run(command="bash experiments/device_train_denoise.sh", carry=["runs/gpu_data"], timeout_s=540)
# (A session gets 15 minutes of device time, start-up included, since 2026-12: experiments/device_check.sh,
# about 4 minutes, does not fit beside this; smoke-tested on the CPU in session 28 with
# DEVICE=cpu TRAIN_SECONDS=20 BATCH=2 CROP=64 DATA=<a copy of a few photos in the same two folders>.)
#
# It continues the shipped denoiser (denoise_wide2 since session 19; a narrower one would be
# widened, hyperisp/train/widen.py) on AWGN-heavy noise while holding it to its own outputs on
# the rest (--distill-from denoise at weight 2.0: session 22's way to gain on CBSD68 and the
# real pair at once, runs/dn43 in docs/training.md; 1.0 lost the pair in this step), measures
# the GPU's it/s in a short probe, sets --iters so the cosine schedule ends inside
# TRAIN_SECONDS (default 360), trains, and exports the best
# validated weights as a card under $OUT/card (fp16, ~23 MB; int8, 24 MB, for MODEL=denoise_wide2_hid128). The device tool returns files of
# at most 16 MiB, so the weights come back in two parts; join them here:
#     cat <files_at>/card/denoise.safetensors.part-* > DIR/denoise.safetensors
# next to the card (DIR/denoise.json, whose sha256 checks the join). Score it with
# `hyperisp eval denoise ... --model DIR/denoise.json` and ship it only if it beats
# weights/denoise on CBSD68 and the SIDD pair.
# Environment: DEVICE (cuda), TRAIN_SECONDS (360), BATCH (32), CROP (128), DATA (runs/gpu_data),
# DISTILL_VIEWS (4; 1 for the shipped model alone as the teacher), MODEL (denoise_wide2; denoise_wide2_hid128
# grows the filter MLPs to twice the parameters at the same per-pixel cost, session 29's runs/dn59).
set -u
DATA=${DATA:-runs/gpu_data}
if [ "${1:-}" = "--pack" ]; then
    mkdir -p "$DATA"
    cp -r ../shared/datasets/train/bsds432 ../shared/datasets/train/sun_hays80 "$DATA"/  # urban100 (94 MB) does not fit
    du -sh "$DATA"
    exit 0
fi
OUT=${OUT:-/tmp/device_train}
DEVICE=${DEVICE:-cuda}
TRAIN_SECONDS=${TRAIN_SECONDS:-360}
BATCH=${BATCH:-32}
CROP=${CROP:-128}
DISTILL_VIEWS=${DISTILL_VIEWS:-4}
MODEL=${MODEL:-denoise_wide2}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
run=$(mktemp -d)  # checkpoints stay on the machine: only the card comes back
# `timeout` runs programs, not shell functions: the command is an array.
cmd=(python3 -m hyperisp train denoise --data "$DATA/bsds432" --data "$DATA/sun_hays80" --init denoise
     --model "$MODEL" --device "$DEVICE" --batch "$BATCH" --crop "$CROP" --lr 3e-4 --warmup 200
     --loss mse --phone-noise-max 100 --noise-modes 1 2 1 --blur-prob 0.3 --phone-channel-gain 1.6
     --distill-from denoise --distill-weight 2.0 --seed 17)
# DISTILL_VIEWS=4: the teacher is the shipped model's 4-view self-ensemble, on every sample (sessions 25-26,
# runs/dn50, dn51, dn53: +0.05 dB on CBSD68 in 12000 CPU iterations, then level; docs/model_history.md).
if [ "$DISTILL_VIEWS" -gt 1 ]; then cmd+=(--distill-views "$DISTILL_VIEWS" --distill-white); fi

# Probe: 60 iterations, no validation; its last line reports it/s.
probe=$(timeout 120 "${cmd[@]}" --iters 60 --out "$run/probe" --validate-every 100000 --checkpoint-every 100000 2>&1 | tail -1)
echo "probe: $probe" | tee "$OUT/train.txt"
iters=$(python3 -c "import re,sys; m=re.search(r'([0-9.]+) it/s', sys.argv[1]); print(max(100, int(float(m.group(1)) * $TRAIN_SECONDS * 0.9)) if m else 0)" "$probe")
if [ "$iters" = "0" ]; then echo "the probe did not train: see above" | tee -a "$OUT/train.txt"; exit 1; fi
every=$(( iters / 8 > 100 ? iters / 8 : 100 ))
echo "training $iters iterations: ${cmd[*]} --iters $iters --validate-every $every" | tee -a "$OUT/train.txt"
timeout $(( TRAIN_SECONDS + 120 )) "${cmd[@]}" --iters "$iters" --out "$run/main" --validate-every "$every" \
    --checkpoint-every "$every" 2>&1 | tail -12 | tee -a "$OUT/train.txt"
cp "$run/main/log.jsonl" "$run/main/config.json" "$OUT/" 2>/dev/null
python3 experiments/export_checkpoint.py "$run/main" denoise --out "$OUT/card" --init denoise \
    --recipe "${cmd[*]} --iters $iters --validate-every $every (data: bsds432 + sun_hays80)" 2>&1 | tail -3 | tee -a "$OUT/train.txt"
split -b 15M "$OUT/card/denoise.safetensors" "$OUT/card/denoise.safetensors.part-" && rm "$OUT/card/denoise.safetensors"
ls -la "$OUT/card" 2>&1 | tee -a "$OUT/train.txt"
