#!/usr/bin/env bash
# One prepared GPU check (<= 8 minutes on one GPU): train-step images/s and fraction of the
# matmul peak for iresnet50 / iresnet100 at batch 128 (fp32, fp16 AMP, bf16 AMP), the sharded
# BCE head against CosFace at 1M classes (r = 1 and 0.1), embedding images/s, and faiss GPU
# Flat / IVF QPS on a 1M x 512 gallery, and a `facebench study` smoke on synthetic faces. It runs
# the existing benchmarks with GPU options.
#
#   benchmarks/gpu_check.sh              # on a machine with a CUDA GPU (and faiss-gpu-cu12)
#   benchmarks/gpu_check.sh --cpu-smoke  # CI: the same scripts in reduced sizes on the CPU
set -euo pipefail
cd "$(dirname "$0")"
py=${PYTHON:-python}

if [[ "${1:-}" == "--cpu-smoke" ]]; then
  echo "== train step (CPU smoke)"
  $py bench_train_step.py --quick --models mobilefacenet --precisions float32 bfloat16 --threads 1
  echo "== heads (CPU smoke)"
  $py bench_heads.py --classes 2000 --ratios 1.0 0.1 --heads cosface bce_u --batch 16 --rounds 1
  echo "== embed + faiss (CPU smoke)"
  $py bench_embed.py --quick --models mobilefacenet --batch 4 --gallery 20000
  echo "== face study (CPU smoke: facebench study --preset synth-faces --quick)"
  study_tmp=$(mktemp -d)
  facebench study --preset synth-faces --quick --workers 2 --data "$study_tmp/data" \
    --out "$study_tmp/study" >/dev/null
  test -s "$study_tmp/study/report.md" && rm -rf "$study_tmp"
  exit 0
fi

if ! $py -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA GPU visible to torch; run with --cpu-smoke for the CPU fallbacks" >&2
  exit 2
fi
faiss_device=cuda
if ! $py -c "import sys, faiss; sys.exit(0 if faiss.get_num_gpus() > 0 else 1)"; then
  echo "gpu_check: faiss has no GPU support (pip uninstall faiss-cpu && pip install faiss-gpu-cu12);"
  echo "gpu_check: the faiss rows run on the CPU"
  faiss_device=cpu
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

echo "== train step, batch 128"
$py bench_train_step.py --device cuda --batch 128 --steps 5 --warmup 2 --channels-last \
  --models iresnet50 iresnet100 --precisions float32 float16 bfloat16
echo "== sharded head vs CosFace, 1M classes"
$py bench_heads.py --device cuda --classes 1000000 --ratios 1.0 0.1 \
  --heads cosface bce_u --batch 128 --rounds 3
echo "== embedding images/s and faiss ${faiss_device} on 1M x 512"
$py bench_embed.py --device cuda --batch 256 --faiss-device "$faiss_device"
echo "== face study smoke on cuda:0 (facebench study --preset synth-faces --quick)"
study_tmp=$(mktemp -d)
facebench study --preset synth-faces --quick --device cuda --workers 1 \
  --data "$study_tmp/data" --out "$study_tmp/study" | tail -3
test -s "$study_tmp/study/report.md" && rm -rf "$study_tmp"
