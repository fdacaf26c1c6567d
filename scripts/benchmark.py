"""Benchmark: stock pyannote.audio against this project's pipeline, side by side.

Builds a multi-speaker conversation from the real single-speaker utterances in
../shared/data/speakers, then runs, on the same weights and in separate child
processes (so that each peak RSS is its own):

  (a) stock  pyannote.audio SpeakerDiarization called as the reference model calls
             it: a file path, the 2.1 hyper-parameters, batch size 32;
  (b) ours   ffmpeg decode in memory, the fast embedding stage, bounded clustering,
             post-processing;
  (c) single-pass (only when asked for) ours with the approximate single-pass
             embeddings (diarization.ecapa_single_pass).

It prints per-stage wall times, the real-time factor, peak RSS (and peak GPU memory
on a GPU), the speedup a / b, the DER of b against a and the cosine similarity of
b's embeddings to a's for every (window, speaker) pair both embedded; with (c), the
same against (a) and against (b). Real weights are used when
weights/ holds them, random weights in the real formats otherwise (random weights
find every local speaker active everywhere: the worst case for the embedding stage).

    python scripts/benchmark.py --minutes 2 10            # both pipelines
    python scripts/benchmark.py --minutes 60 --only ours  # ours alone
    python scripts/benchmark.py --minutes 2 --only stock ours single-pass
    python scripts/benchmark.py --clustering-scaling      # clustering cost, 1 h / 2 h / 4 h
    python scripts/benchmark.py --cold-start              # Cog server start to READY
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from diarization.precision import PRECISIONS, pair_cosines  # noqa: E402  (no torch)

SPEAKERS = ROOT.parent / "shared" / "data" / "speakers"
VARIANTS = ["stock", "ours", "single-pass"]


def build_conversation(
    minutes: float, path: Path, seed: int = 0, speakers: Path = SPEAKERS
) -> Path:
    """Alternate utterances of four real speakers (the first four folders of
    `speakers`), 0.2-1.0 s apart, into a 16 kHz WAV; who speaks when goes beside it
    (`turns_path`): [start s, end s, speaker] per turn."""
    from diarization.audio import decode_audio

    rng = np.random.default_rng(seed)
    folders = sorted(p for p in speakers.iterdir() if p.is_dir())[:4]
    utterances = [[decode_audio(f) for f in sorted(folder.iterdir())] for folder in folders]
    total = int(minutes * 60 * 16000)
    out = np.zeros(total, dtype=np.float32)
    position, turn = 0, 0
    turns = []
    while position < total:
        speaker = turn % len(utterances) if rng.random() < 0.7 else rng.integers(len(utterances))
        clip = utterances[speaker][rng.integers(len(utterances[speaker]))]
        clip = clip[: total - position]
        out[position : position + len(clip)] += clip
        turns.append([position / 16000, (position + len(clip)) / 16000, int(speaker)])
        position += len(clip) + int(rng.uniform(0.2, 1.0) * 16000)
        turn += 1
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(out, -1, 1) * 32767).astype("<i2").tobytes())
    turns_path(path).write_text(json.dumps(turns))
    return path


def turns_path(audio: Path) -> Path:
    return audio.with_suffix(".turns.json")


def oracle_segmentations(turns: list, num_samples: int, inference):
    """What a perfect segmentation model would output on the conversation: for each
    window of the pipeline's segmentation `inference` (pyannote's layout: the last
    one padded), the activity of its (at most 3) most active speakers on the
    model's output frames."""
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    model = inference.model
    window, hop = round(inference.duration * 16000), round(inference.step * 16000)
    num_chunks = max(0, (num_samples - window) // hop + 1)
    if num_samples < window or (num_samples - window) % hop > 0:
        num_chunks += 1
    frames = model.receptive_field
    num_frames = model.num_frames(window)
    # activity of each speaker every 10 ms
    resolution = 0.01
    speakers = 1 + max(t[2] for t in turns)
    activity = np.zeros((int(num_samples / 16000 / resolution) + 600, speakers), dtype=bool)
    for start, end, speaker in turns:
        activity[int(start / resolution) : int(end / resolution), speaker] = True
    middles = frames.start + frames.duration / 2 + np.arange(num_frames) * frames.step
    data = np.zeros((num_chunks, num_frames, 3), dtype=np.float32)
    for c in range(num_chunks):
        # (num_frames, speakers)
        chunk = activity[((c * inference.step + middles) / resolution).astype(int)]
        local = np.argsort(-chunk.sum(axis=0), kind="stable")[:3]
        data[c, :, : len(local)] = chunk[:, local]
    chunks = SlidingWindow(start=0.0, duration=inference.duration, step=inference.step)
    return SlidingWindowFeature(data, chunks)


def use_oracle_segmentations(pipeline, audio: Path, run_model: bool = False) -> None:
    """Make `pipeline` take `oracle_segmentations` of the conversation in `audio`
    instead of its segmentation model's output; with `run_model` the model still runs
    first, as in a real call, so that its time counts (end-to-end timings)."""
    with wave.open(str(audio)) as w:
        num_samples = w.getnframes()
    turns = json.loads(turns_path(audio).read_text())
    segmentations = oracle_segmentations(turns, num_samples, pipeline._segmentation)
    model_segmentations = pipeline.get_segmentations

    def get_segmentations(file, hook=None):
        if run_model:
            model_segmentations(file, hook=hook)
        return segmentations

    pipeline.get_segmentations = get_segmentations


def run_child(
    variant: str,
    audio: Path,
    weights: Path,
    device: str,
    embeddings_out: Path | None = None,
    oracle: bool = False,
    precision: str = "fp32",
    embedding_batch: int | None = None,
    warm_up_seconds: float = 0.0,
    grouped_widths: bool = False,
) -> dict:
    """Run one pipeline in this process and return its figures (called in a child);
    its window embeddings go to `embeddings_out` (.npy) if given;
    `oracle` replaces the segmentation model's output by `oracle_segmentations` (the
    model still runs: its time counts); `precision` is our variants'
    (`diarization.precision`); `embedding_batch` replaces the pipeline's pairs per
    embedding batch (the values do not depend on it: `exact_embeddings`);
    `warm_up_seconds` > 0 runs the pipeline once on that much noise first
    (`pyannote_pipeline.warm_up`, as the service does at load on a GPU);
    `grouped_widths` batches ours's pairs of each stock width apart
    (`FastSpeakerDiarization.mixed_width_batches` off)."""
    import torch

    from diarization.audio import decode_audio
    from diarization.postprocess import postprocess
    from diarization.pyannote_pipeline import (
        WARM_UP_SECONDS,
        PyannotePipeline,
        _StageTimer,
        load_models,
        warm_up_as_loaded,
    )
    from diarization.schema import RawDiarization, SpeakerCount, Turn
    from diarization.weights import WeightsLayout

    started = time.perf_counter()
    pipeline = load_models(
        WeightsLayout(weights),
        torch.device(device),
        stock=variant == "stock",
        single_pass=variant == "single-pass",
        precision=precision,
    )
    load_s = time.perf_counter() - started
    if embedding_batch:
        pipeline.embedding_batch_size = embedding_batch
    if grouped_widths:
        pipeline.mixed_width_batches = False
    tf32_deviation = None
    started = time.perf_counter()
    if warm_up_seconds or (precision == "auto" and device.startswith("cuda")):
        # as the service loads (under auto on a GPU: a warm-up in fp32, one in TF32)
        tf32_deviation = warm_up_as_loaded(pipeline, warm_up_seconds or WARM_UP_SECONDS)
    warm_up_s = time.perf_counter() - started
    if oracle:
        use_oracle_segmentations(pipeline, audio, run_model=True)
    timer = _StageTimer(None)
    stages: dict[str, float] = {}

    captured = {}

    def hook(step, artifact, file=None, total=None, completed=None):
        timer(step, completed, total)
        if step == "embeddings" and isinstance(artifact, np.ndarray):
            captured["embeddings"] = artifact

    with torch.inference_mode():
        if variant == "stock":
            timer._mark = time.perf_counter()
            annotation = pipeline({"audio": str(audio), "uri": "bench"}, hook=hook)
            timer.finish()
            stages.update(timer.seconds)
            turns = [
                Turn(float(s.start), float(s.end), str(label))
                for s, _, label in annotation.itertracks(yield_label=True)
            ]
            if embeddings_out is not None and "embeddings" in captured:
                np.save(embeddings_out, captured["embeddings"])
            with wave.open(str(audio)) as w:
                duration = w.getnframes() / w.getframerate()
            raw = RawDiarization(turns, _no_windows(), {}, duration)
        else:
            t = time.perf_counter()
            waveform = decode_audio(audio)
            stages["decode"] = time.perf_counter() - t
            runner = PyannotePipeline(pipeline)
            t = time.perf_counter()
            raw = runner(waveform, 16000, SpeakerCount())
            stages.update(runner.last_stage_seconds)
            if embeddings_out is not None:
                np.save(embeddings_out, raw.windows.embeddings)
    t = time.perf_counter()
    centroids = {t.speaker: np.zeros(192) for t in raw.turns}
    raw = RawDiarization(raw.turns, raw.windows, raw.centroids or centroids, raw.duration)
    result = postprocess(raw)
    stages["postprocess"] = time.perf_counter() - t
    figures = {
        "variant": variant,
        "load_s": load_s,
        "warm_up_s": warm_up_s,
        "stages": stages,
        "total_s": sum(stages.values()),
        "audio_s": raw.duration,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "turns": [(t.start, t.end, t.speaker) for t in raw.turns],
        "speakers": len(result.labels),
    }
    if tf32_deviation is not None:
        figures["auto"] = (
            f"TF32 embeddings {'kept' if pipeline.tf32_embeddings else 'refused'}: "
            f"1 - cosine to fp32 {tf32_deviation:.1e} on the warm-up"
        )
    if device.startswith("cuda"):
        figures["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        figures["peak_gpu_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    return figures


def _no_windows():
    from diarization.schema import WindowEmbeddings

    return WindowEmbeddings(np.zeros(0), 5.0, np.zeros((0, 3, 192)))


def der(reference: list, hypothesis: list) -> float:
    """DER (collar 0, overlap scored) of `hypothesis` against `reference` turns."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    def annotation(turns):
        a = Annotation()
        for i, (start, end, label) in enumerate(turns):
            a[Segment(start, end), i] = label
        return a

    return DiarizationErrorRate(collar=0.0)(annotation(reference), annotation(hypothesis))


def clustering_scaling(hours: list[float]) -> None:
    """Peak memory and time of the bounded clustering on 1 h / 2 h / 4 h of embeddings."""
    for h in hours:
        code = (
            "import resource,time,numpy as np\n"
            "from pyannote.core import SlidingWindow, SlidingWindowFeature\n"
            "from diarization.fast_clustering import BoundedAgglomerativeClustering as B\n"
            f"n=int({h}*7200); rng=np.random.default_rng(0)\n"
            "c=rng.normal(size=(4,192))\n"
            "e=c[rng.integers(0,4,(n,3))]+0.3*rng.normal(size=(n,3,192))\n"
            "e[:,2]=np.nan; s=np.zeros((n,10,3)); s[:,:,:2]=1\n"
            "k=B(); k.instantiate({'method':'centroid','threshold':0.7153814381597874,"
            "'min_cluster_size':15})\n"
            "t=time.perf_counter(); hc=k(embeddings=e,"
            "segmentations=SlidingWindowFeature(s,SlidingWindow(duration=5,step=0.5)))[0]\n"
            "print(n*2, round(time.perf_counter()-t,2), "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss//1024, len(np.unique(hc)))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        )
        pairs, seconds, rss, clusters = out.stdout.split()
        unbounded_gb = int(pairs) ** 2 / 2 * 8 / 2**30
        print(
            f"clustering {h:>4} h: {pairs} active pairs, {seconds} s, peak RSS {rss} MB, "
            f"{clusters} clusters (unbounded pdist alone would need {unbounded_gb:.1f} GB)"
        )


def cold_start(weights: Path) -> None:
    """Seconds from starting the Cog HTTP server to its health check saying READY."""
    import socket
    import urllib.request

    subprocess.run([sys.executable, "scripts/openapi_schema.py"], cwd=ROOT, check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, COG_PREDICT_TYPE_STUB="predict.py:Predictor", PORT=str(port))
    env.update(DIARIZATION_WEIGHTS_DIR=str(weights))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        status = "STARTING"
        while status in ("STARTING", None) and time.perf_counter() - started < 300:
            time.sleep(0.1)
            try:
                url = f"http://127.0.0.1:{port}/health-check"
                with urllib.request.urlopen(url, timeout=2) as response:
                    status = json.loads(response.read())["status"]
            except OSError:
                pass
        print(f"cold start: process start to {status} in {time.perf_counter() - started:.1f} s")
    finally:
        server.terminate()
        server.wait()


def machine(device: str) -> str:
    import torch

    from diarization.cpu_threads import usable_cpus

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "no GPU"
    cpus = usable_cpus()  # what loading fits the thread counts to
    return f"{platform.machine()} ({cpu_model()}), {cpus} CPUs, {gpu}, torch {torch.__version__}"


def cpu_model(cpuinfo_path: str = "/proc/cpuinfo") -> str:
    """The CPU's model name: what decides the CPU rows (the same code's figures differ
    by CPU model, and a shared machine is not always the same one)."""
    try:
        with open(cpuinfo_path) as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "CPU model unknown"


def matmul_rate(seconds: float = 0.5) -> str:
    """The CPU's fp32 matrix-product rate right now, on torch's threads: the exact stage
    is bound by it, and a shared machine's rate drifts, so a run prints it before and after."""
    import torch

    a, b = torch.randn(2048, 1024), torch.randn(1024, 1024)
    a @ b
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        a @ b
        count += 1
    rate = 2 * 2048 * 1024 * 1024 * count / elapsed / 1e9
    return f"CPU fp32 matrix products: {rate:.0f} GFLOP/s on {torch.get_num_threads()} threads"


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every measurement script shares: device, weights, speakers, oracle."""
    parser.add_argument("--device", default=None)
    parser.add_argument("--weights", type=Path)
    parser.add_argument(
        "--speakers",
        type=Path,
        default=SPEAKERS,
        help="folder of per-speaker folders of utterances (default: ../shared/data/speakers)",
    )
    parser.add_argument(
        "--oracle-activity",
        action="store_true",
        help="replace the segmentation model's output, for every variant, by the "
        "conversation's known turns: the activity a trained model would find (random "
        "weights find every speaker active everywhere); the benchmark still runs the "
        "model, so that its time counts",
    )


def pick_weights(given: Path | None, work: Path) -> tuple[Path, str]:
    """The weights to measure and which they are: `given`, else the real ones in
    weights/ when complete, else random weights in the real formats under `work`."""
    from diarization.weights import default_layout

    if given:
        return given, "given"
    if default_layout().is_complete():
        return default_layout().root, "real"
    from diarization.random_weights import write_random_weights

    return write_random_weights(work / "weights").root, "random"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", help="default: 2")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=VARIANTS,
        help="variants to run (default: stock ours); single-pass runs only when named",
    )
    add_input_arguments(parser)
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        default=["fp32"],
        help="our variants run once per precision (diarization.precision; GPU only, "
        "a CPU computes fp32 whatever is asked; auto, the service's default, checks TF32 "
        "at load, which warms up: give --warm-up for a fair comparison); stock is always "
        "fp32 (default: fp32)",
    )
    parser.add_argument(
        "--embedding-batch",
        nargs="+",
        type=int,
        default=[],
        help="also run ours once per number of pairs per embedding batch, named ours-bN "
        "(default for ours: 64 on a GPU, 4 on a CPU)",
    )
    parser.add_argument(
        "--warm-up",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="each variant first runs once on this much noise after loading, as the "
        "service does on a GPU (default 0: the timed run is the process's first)",
    )
    parser.add_argument(
        "--grouped-widths",
        action="store_true",
        help="also run ours once per precision with the pairs of each stock width in "
        "batches of their own, as before batches mixed widths (ours-grouped): what "
        "mixing them saves",
    )
    parser.add_argument("--clustering-scaling", action="store_true")
    parser.add_argument("--cold-start", action="store_true", help="time the Cog server to READY")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--audio", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--embeddings-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        figures = run_child(
            args.child,
            args.audio,
            args.weights,
            args.device,
            args.embeddings_out,
            args.oracle_activity,
            args.precision[0],
            args.embedding_batch[0] if args.embedding_batch else None,
            args.warm_up,
            args.grouped_widths,
        )
        print(json.dumps(figures))
        return
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    work = Path(tempfile.mkdtemp(prefix="diarization-bench-"))
    weights, kind = pick_weights(args.weights, work)
    print(f"machine: {machine(device)}")
    print(f"device: {device}; weights: {kind} ({weights}); date: {time.strftime('%Y-%m-%d')}")
    threshold = os.environ.get("MALLOC_MMAP_THRESHOLD_", "glibc default")
    print(f"allocator: MALLOC_MMAP_THRESHOLD_={threshold}")
    on_cpu = device == "cpu"
    if on_cpu:
        print(matmul_rate())
    if args.oracle_activity:
        print(
            "segmentation: the model runs (its time counts), its output replaced by the "
            "conversation's known turns (oracle), for every variant"
        )
    if args.warm_up:
        print(f"each variant first runs on {args.warm_up:g} s of noise (warm-up), then is timed")
    if args.cold_start:
        cold_start(weights)
    if args.clustering_scaling:
        clustering_scaling([1, 2, 4])
    variants = args.only or ["stock", "ours"]
    if args.minutes is None and not (args.cold_start or args.clustering_scaling):
        args.minutes = [2.0]
    for minutes in args.minutes or []:
        audio = build_conversation(
            minutes, work / f"conversation-{minutes:g}min.wav", speakers=args.speakers
        )
        print(f"\n{minutes:g} min of audio", flush=True)
        results = {}
        for variant, precision, batch, grouped in runs(
            variants, args.precision, args.embedding_batch, args.grouped_widths
        ):
            name = variant + ("-grouped" if grouped else "")
            name += "" if precision == "fp32" else f"-{precision}"
            name += f"-b{batch}" if batch else ""
            command = [sys.executable, __file__, "--child", variant, "--audio", str(audio)]
            command += ["--weights", str(weights), "--device", device]
            command += ["--precision", precision]
            command += ["--embedding-batch", str(batch)] if batch else []
            command += ["--warm-up", str(args.warm_up)]
            command += ["--grouped-widths"] if grouped else []
            command += ["--embeddings-out", str(work / f"{name}-{minutes:g}min.npy")]
            if args.oracle_activity:
                command.append("--oracle-activity")
            # children inherit the allocator settings (MALLOC_MMAP_THRESHOLD_): see README
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
            print_run(name, results[name])
        for variant in results:
            if variant != "stock" and "stock" in results:
                a, b = results["stock"], results[variant]
                print(
                    f"  speedup stock/{variant}: {a['total_s'] / b['total_s']:.2f}x; "
                    f"DER of {variant} against stock: {100 * der(a['turns'], b['turns']):.2f} %; "
                    f"identical segments and labels: {'yes' if a['turns'] == b['turns'] else 'no'}"
                )
                stock = np.load(work / f"stock-{minutes:g}min.npy")
                other = np.load(work / f"{variant}-{minutes:g}min.npy")
                print(f"  {variant} embeddings against stock: {cosine_summary(stock, other)}")
        for variant in results:
            if "-grouped" in variant and variant.replace("-grouped", "") in results:
                mixed = variant.replace("-grouped", "")
                a, b = results[variant], results[mixed]
                print(
                    f"  speedup {variant}/{mixed} (batches mixing widths): "
                    f"{a['total_s'] / b['total_s']:.2f}x, embeddings "
                    f"{a['stages']['embeddings'] / b['stages']['embeddings']:.2f}x; "
                    f"identical segments and labels: {'yes' if a['turns'] == b['turns'] else 'no'}"
                )
                grouped = np.load(work / f"{variant}-{minutes:g}min.npy")
                other = np.load(work / f"{mixed}-{minutes:g}min.npy")
                print(f"  {mixed} embeddings against {variant}: {cosine_summary(grouped, other)}")
        for variant in results:
            if variant in ("stock", "ours") or "ours" not in results or "-grouped" in variant:
                continue
            a, b = results["ours"], results[variant]
            print(
                f"  speedup ours/{variant}: {a['total_s'] / b['total_s']:.2f}x; "
                f"DER of {variant} against ours: {100 * der(a['turns'], b['turns']):.2f} %"
            )
            exact = np.load(work / f"ours-{minutes:g}min.npy")
            other = np.load(work / f"{variant}-{minutes:g}min.npy")
            print(f"  {variant} embeddings against ours: {cosine_summary(exact, other)}")
        if on_cpu:
            print(f"  after these runs: {matmul_rate()}")
        sys.stdout.flush()


def print_run(name: str, r: dict) -> None:
    stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
    warm = f" + warm-up {r['warm_up_s']:.2f} s" if r.get("warm_up_s", 0) > 0.005 else ""
    gpu = ""
    if "peak_gpu_mb" in r:
        gpu = (
            f", peak GPU {r['peak_gpu_mb']:.0f} MB allocated "
            f"({r['peak_gpu_reserved_mb']:.0f} MB reserved)"
        )
    print(
        f"  {name:5s} total {r['total_s']:.2f} s = {r['audio_s'] / r['total_s']:.1f}x "
        f"real time; load {r['load_s']:.2f} s{warm}; peak RSS {r['peak_rss_mb']:.0f} MB{gpu}; "
        f"{r['speakers']} speakers\n        stages (s): {stages}",
        flush=True,
    )
    if "auto" in r:
        print(f"        {r['auto']}", flush=True)


def runs(
    variants: list[str],
    precisions: list[str],
    embedding_batches: list[int],
    grouped_widths: bool = False,
) -> list[tuple[str, str, int | None, bool]]:
    """(variant, precision, embedding batch or None, widths grouped) to run: stock once
    in fp32, ours and single-pass once per precision, then ours in fp32 once per
    embedding batch size, then (`grouped_widths`) ours grouped once per precision."""
    return (
        [
            (variant, precision, None, False)
            for variant in variants
            for precision in (["fp32"] if variant == "stock" else precisions)
        ]
        + [("ours", "fp32", batch, False) for batch in embedding_batches]
        + [("ours", precision, None, True) for precision in precisions if grouped_widths]
    )


def cosine_summary(reference: np.ndarray, other: np.ndarray) -> str:
    """Cosine similarity of each (window, speaker) embedding both stages computed."""
    cosine = pair_cosines(reference, other)
    only = int((np.isnan(reference).any(axis=-1) != np.isnan(other).any(axis=-1)).sum())
    return (
        f"{len(cosine)} pairs, cosine mean {cosine.mean():.4f}, 5th percentile "
        f"{np.percentile(cosine, 5):.4f}, min {cosine.min():.4f} (1 - min {1 - cosine.min():.1e}); "
        f"pairs embedded by one only: {only}"
    )


if __name__ == "__main__":
    main()
