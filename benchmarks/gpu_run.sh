#!/usr/bin/env bash
# The GPU figures of results/bench/*_cuda.json: one prepared run on a lent GPU machine.
# Needs torch, timm, numpy, scipy, tqdm, pyyaml, onnx, safetensors there and a small CamVid
# subset under $EQUSS_DATA (random-weight backbones: no downloads).  Writes to ${OUT:-results/bench}.
set -uo pipefail
OUT=${OUT:-results/bench}
mkdir -p "$OUT"
export PYTHONPATH=$PWD:${PYTHONPATH:-} EQUSS_CACHE=${EQUSS_CACHE:-/tmp/equss-cache} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu_info.txt"
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu_info.txt"
# 1. the paper's training step (ViT-S/8 at 224, batch 16, d_E 1024, M 32, K 256), AMP, both input paths
python3 benchmarks/bench_train_step.py --device cuda --backbones dino_vits8 dinov2_vits14_offline \
    --batch-size 16 --n-images 48 --out-dir "$OUT" 2>&1 | tail -25
# 2. PQ forward+backward on the GPU against the per-codebook loop
python3 benchmarks/bench_pq.py --device cuda --out-dir "$OUT" 2>&1 | tail -15
# 3. a real (smoke) training + evaluation on CUDA with AMP, end to end
python3 -m equss train --preset camvid-equss --scale smoke --device cuda --set train.backbone=dino_vits8 --set "train.weights=${GPU_WEIGHTS:-}" --out /tmp/gpu-run 2>&1 | tail -3
python3 -m equss eval --checkpoint /tmp/gpu-run/best.pt --device cuda --out "$OUT/gpu_smoke_eval" 2>&1 | tail -4
