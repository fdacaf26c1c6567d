#!/usr/bin/env bash
# Issue 4's GPU checks in one call on a lent GPU machine (its own python3, torch and
# CUDA; no network). Usage, from the repository root:
#
#   bash scripts/gpu/run.sh CARRY [PLAN]  # CARRY: a folder holding
#     wheels/     the packages the machine lacks (pyannote.audio 3.4.0, speechbrain
#                 1.0.3 and their pure-Python needs; see docs/performance.md)
#     ffmpeg.xz, ffprobe.xz   static x86-64 builds, used when the machine has none
#     speakers/   the first four folders of ../shared/data/speakers
# (scripts/gpu/make_carry.sh builds it), named in the device tool's `carry`.
#
# PLAN: "checks" (default: the GPU tests, ECAPA's forward pass side by side, the
# segmentation model's batch sizes, 1 h in each precision, 10 min side by side with
# stock, 4 h, the worst case, a profile, precision), "recheck" (after a change, in
# about 7 minutes: the GPU tests, 10 min side by side with stock warmed up in fp32
# and auto (and each with widths grouped), 1 h in both, decoding alongside the segmentation,
# ECAPA in TF32 eagerly and from a CUDA graph, 4 h's memory,
# also with expandable segments, 10 min cold),
# "memory" (a call's GPU memory after the warm-up) or "profile" (where the exact
# stage's time goes, then 1 h again).
# Steps run in order of importance, each within what is left of DEADLINE_S seconds;
# everything printed also goes to $OUT/log.txt.
# QUICK=1 shrinks every input (a dry run on a CPU); PYTHON picks the interpreter
# (default python3).
set -u
CARRY=$(realpath "${1:-.gpu}")
PLAN=${2:-checks}
OUT=${OUT:-$(mktemp -d)}
PYTHON=${PYTHON:-python3}
DEADLINE_S=${DEADLINE_S:-520}
started=$(date +%s)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONWARNINGS=ignore

site=$(mktemp -d)
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
    "$CARRY"/wheels/*.whl || exit 1
# sitecustomize.py (torchaudio >= 2.9 compatibility) loads in every process
export PYTHONPATH="$site:$PWD/scripts/gpu"
if [ -n "${FORCE_STATIC_FFMPEG:-}" ] || ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
    bin=$(mktemp -d)
    xz -dc "$CARRY/ffmpeg.xz" >"$bin/ffmpeg" && xz -dc "$CARRY/ffprobe.xz" >"$bin/ffprobe"
    chmod +x "$bin/ffmpeg" "$bin/ffprobe"
    export PATH="$bin:$PATH"
fi
echo "ffmpeg: $(command -v ffmpeg) ($(ffmpeg -version | head -1 | cut -c1-40))"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
"$PYTHON" -c "import torch, pyannote.audio, speechbrain; print('torch', torch.__version__, \
'pyannote.audio', pyannote.audio.__version__, 'speechbrain', speechbrain.__version__)" || exit 1

weights="$site/random-weights"
"$PYTHON" -c "from pathlib import Path; from diarization.random_weights import \
write_random_weights as w; w(Path('$weights'))" || exit 1

m() { if [ -n "${QUICK:-}" ]; then echo "$2"; else echo "$1"; fi; }
step() {  # step LIMIT_S command...: run within LIMIT_S and what is left of DEADLINE_S
    local limit=$1
    shift
    [ -n "${QUICK:-}" ] && limit=$((limit * 4))
    local left=$((DEADLINE_S - ($(date +%s) - started)))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 20 ]; then
        echo "== skipped (no time left): $*" | tee -a "$OUT/log.txt"
        return
    fi
    echo "== $* (within ${limit} s, at $(($(date +%s) - started)) s)" | tee -a "$OUT/log.txt"
    timeout "$limit" "$PYTHON" "$@" 2>&1 | tee -a "$OUT/log.txt"
    pkill -f "benchmark.py --child" # what a step cut short left running
}
common=(--weights "$weights" --speakers "$CARRY/speakers")
# steps more than one plan runs
gpu_tests=(-m pytest -q -p no:cacheprovider -m gpu tests/test_exact_embeddings.py
    tests/test_ecapa_forward.py tests/test_single_pass.py tests/test_pipeline.py
    tests/test_precision.py tests/test_streamed_segmentation.py)
ecapa_speed=(scripts/ecapa_speed.py --batch 32 --frames "$(m 501 120)" --weights "$weights")
profile=(scripts/profile_embeddings.py --minutes "$(m 3 0.15)" --oracle-activity --rows 12
    "${common[@]}")

if [ "$PLAN" = checks ]; then
    step 90 "${gpu_tests[@]}"
    # ECAPA's forward pass: SpeechBrain's convolutions against ecapa_forward's products
    step 40 "${ecapa_speed[@]}"
    # the segmentation model on 1 h (the oracle rows below replace it) at stock's batch
    # size and larger ones (GPU_SEGMENTATION_BATCH_SIZE)
    step 40 scripts/segmentation_speed.py --minutes "$(m 60 0.5)" --batch 32 128 256 \
        --weights "$weights"
    step 150 scripts/benchmark.py --minutes "$(m 60 0.2)" --oracle-activity --only ours single-pass \
        --precision fp32 tf32 fp16 "${common[@]}"
    step 90 scripts/benchmark.py --minutes "$(m 10 0.15)" --oracle-activity --only stock ours \
        single-pass "${common[@]}"
    # the allocator setting cog.yaml gives the service (docs/performance.md, long audio)
    # and where the host's peak comes from: resident memory after each stage
    MALLOC_MMAP_THRESHOLD_=131072 step 100 scripts/memory_profile.py --minutes "$(m 240 0.25)" \
        --oracle-activity "${common[@]}"
    step 80 scripts/benchmark.py --minutes "$(m 10 0.15)" --only stock ours "${common[@]}"
    step 45 "${profile[@]}"
    step 50 scripts/precision.py --minutes "$(m 3 0.15)" --oracle-activity --single-pass \
        "${common[@]}"
elif [ "$PLAN" = recheck ]; then
    # first the GPU tests: among them, that a batch of the exact stage queues on the GPU
    # without waiting for it (torch.cuda.set_sync_debug_mode), and that precision auto
    # checks TF32 at load and runs only the embedding stage in it
    step 60 "${gpu_tests[@]}"
    # 10 min side by side with stock, each warmed up first as the service is at load:
    # ours in strict fp32 and in auto (the default: TF32 embeddings once checked), each
    # also with the pairs of one stock width batched apart (what mixing widths saves)
    step 130 scripts/benchmark.py --minutes "$(m 10 0.15)" --oracle-activity --only stock ours \
        --precision fp32 auto --warm-up 10 --grouped-widths "${common[@]}"
    # 1 h in strict fp32 and in auto
    step 80 scripts/benchmark.py --minutes "$(m 60 0.2)" --oracle-activity --only ours \
        --precision fp32 auto --warm-up 10 "${common[@]}"
    # an upload's decoding alongside the segmentation against one after the other (1 h
    # of MP3 and of AAC, 44.1 kHz stereo): what decoding while segmenting hides
    step 75 scripts/decode_overlap.py --minutes "$(m 60 0.5)" --format mp3 aac --repeats 3 \
        --weights "$weights" --speakers "$CARRY/speakers"
    # with TF32 the stage may wait for Python's kernel launches: ECAPA's batch of 64
    # eagerly and replayed from a CUDA graph
    step 40 scripts/ecapa_speed.py --batch 64 --frames "$(m 501 120)" --tf32 --weights "$weights"
    # 4 h: GPU memory (allocated and reserved) with 64 pairs per batch, host memory with
    # the Cog image's allocator setting
    MALLOC_MMAP_THRESHOLD_=131072 step 100 scripts/memory_profile.py --minutes "$(m 240 0.25)" \
        --oracle-activity "${common[@]}"
    # the 4 h again with PyTorch's expandable segments: the segmentation reserved 3.62 GiB
    # for 2.33 allocated (fragmentation), the one figure near the 4 GB bound
    MALLOC_MMAP_THRESHOLD_=131072 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True \
        step 100 scripts/memory_profile.py --minutes "$(m 240 0.25)" --oracle-activity \
        "${common[@]}"
    # each as the first call of its process (auto's check warms ours up: fp32 only here)
    step 60 scripts/benchmark.py --minutes "$(m 10 0.15)" --oracle-activity --only stock ours \
        "${common[@]}"
    # where the time of the embedding stage in TF32 goes (1 h: 2.55 s, where its matrix
    # products alone should take a fraction of that)
    step 45 "${profile[@]}" --precision auto
elif [ "$PLAN" = memory ]; then
    # the GPU memory a call reserves after the warm-up (the warm-up's cache given back)
    step 60 scripts/benchmark.py --minutes "$(m 10 0.15)" --oracle-activity --only ours \
        --warm-up 10 "${common[@]}"
else
    step 45 "${profile[@]}"
    step 45 "${profile[@]}" --precision auto
    step 90 scripts/benchmark.py --minutes "$(m 60 0.2)" --oracle-activity --only ours single-pass \
        "${common[@]}"
    step 60 scripts/benchmark.py --minutes "$(m 240 0.25)" --oracle-activity --only single-pass \
        "${common[@]}"
fi
echo "== done in $(($(date +%s) - started)) s" | tee -a "$OUT/log.txt"
