#!/usr/bin/env bash
# Builds the folder that scripts/gpu/run.sh needs on a lent GPU machine (which reaches
# no registry): the wheels its image lacks, static ffmpeg/ffprobe, and four speakers.
# Run here, from the repository root; about 50 MB, under the device tool's 64 MiB.
#
#   bash scripts/gpu/make_carry.sh .gpu   # then: echo /.gpu/ >> .git/info/exclude
set -euo pipefail
CARRY=${1:-.gpu}
mkdir -p "$CARRY/wheels" "$CARRY/speakers"

# The image has Python 3.12 with torch, lightning, numpy, scipy, scikit-learn, pandas,
# huggingface_hub, requests...; these are what pyannote.audio 3.4.0 and speechbrain 1.0.3
# import beyond it (pure Python but for ruamel.yaml.clib, SQLAlchemy and fastcluster),
# and pytest for the GPU tests.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$CARRY/wheels" \
    pyannote.audio==3.4.0 pyannote.core==5.0.0 pyannote.database==5.1.3 \
    pyannote.metrics==3.2.1 pyannote.pipeline==3.0.1 asteroid-filterbanks==0.4.0 \
    speechbrain==1.0.3 HyperPyYAML==1.2.3 ruamel.yaml==0.18.17 ruamel.yaml.clib==0.2.15 \
    pytorch-metric-learning==2.9.0 torch-audiomentations==0.12.0 julius==0.2.8 primePy==1.3 \
    torch_pitch_shift==1.2.5 semver==3.1.2 tensorboardX==2.6.5 omegaconf==2.4.0 \
    optuna==5.0.0 alembic==1.20.1 SQLAlchemy==2.1.9 colorlog==6.12.0 Mako==1.4.3 \
    fastcluster==1.3.0 pytest==9.2.0 pluggy==1.6.0 iniconfig==2.1.0 pygments==2.19.2
# published as source only
python3 -m pip wheel -q --no-deps -w "$CARRY/wheels" docopt==0.6.2 antlr4-python3-runtime==4.9.3

# Static x86-64 builds from the npm registry, recompressed (68 + 79 MB -> 16 + 20 MB).
work=$(mktemp -d)
(cd "$work" && npm pack -q @ffmpeg-installer/linux-x64@4.1.0 @ffprobe-installer/linux-x64@5.2.0 >/dev/null)
tar -xzf "$work"/ffmpeg-installer-*.tgz -C "$work" package/ffmpeg
tar -xzf "$work"/ffprobe-installer-*.tgz -C "$work" package/ffprobe
xz -T0 -9 -c "$work/package/ffmpeg" >"$CARRY/ffmpeg.xz"
xz -T0 -9 -c "$work/package/ffprobe" >"$CARRY/ffprobe.xz"
rm -rf "$work"

# the four speakers the benchmark's conversation uses (the first four folders)
for folder in $(ls ../shared/data/speakers | sort | head -4); do
    cp -r "../shared/data/speakers/$folder" "$CARRY/speakers/"
done
du -sh "$CARRY"
