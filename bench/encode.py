"""Encoding benchmark (see bench/encode). Writes the "Encoding" section of docs/bench.md."""
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchdoc import cpu as benchdoc_cpu, write_section

ROOT = Path(__file__).resolve().parent.parent
AMSPLAY = ROOT / "target/release/amsplay"
SECONDS = int(os.environ.get("BENCH_SECONDS", "60"))
# The "Adaptive Streaming" ladder for a 1080p source, as amsplay's encoder chooses it.
LADDER = [(1920, 1080, 6780), (1280, 720, 3520), (960, 540, 2210), (640, 360, 1150), (480, 270, 720), (320, 180, 380)]


def rung_args(w, h, k, out):
    return ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
            "-b:v", f"{k}k", "-maxrate", f"{k * 3 // 2}k", "-bufsize", f"{k * 2}k", "-g", "60", "-keyint_min", "60",
            "-sc_threshold", "0", "-flags", "+cgop", "-force_key_frames", "expr:gte(t,n_forced*2)",
            "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-movflags", "+faststart", out]


def timed(cmd, env=None):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    return time.perf_counter() - t0


def main():
    work = Path(tempfile.mkdtemp(prefix="amsplay-encode-"))
    src = work / "src.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1920x1080:rate=30:duration={SECONDS}", "-f", "lavfi", "-i",
                    f"sine=frequency=1000:sample_rate=48000:duration={SECONDS}", "-c:v", "libx264", "-preset", "fast",
                    "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(src)], check=True)
    rows = []
    # Plain ffmpeg, one pass: decode once, split, scale, encode every rung.
    graph = f"[0:v]split={len(LADDER)}" + "".join(f"[s{i}]" for i in range(len(LADDER)))
    for i, (w, h, _) in enumerate(LADDER):
        graph += f";[s{i}]scale={w}:{h}:flags=bicubic,setsar=1[v{i}]"
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-filter_complex", graph]
    for i, (w, h, k) in enumerate(LADDER):
        cmd += ["-map", f"[v{i}]", "-map", "0:a:0?"] + rung_args(w, h, k, str(work / f"one_{i}.mp4"))
    one = timed(cmd)
    rows.append(("plain ffmpeg, one pass (all rungs)", one))
    print(rows[-1], flush=True)
    # Plain ffmpeg, one process per rung (each decodes the source again).
    per = 0.0
    for i, (w, h, k) in enumerate(LADDER):
        per += timed(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-vf",
                      f"scale={w}:{h}:flags=bicubic,setsar=1"] + rung_args(w, h, k, str(work / f"per_{i}.mp4")))
    rows.append(("plain ffmpeg, one process per rung", per))
    print(rows[-1], flush=True)
    # The emulator: job submitted -> Finished, outputs uploaded and registered.
    env = dict(os.environ, AMSPLAY_LOCAL_DIR=str(work / "local"), AMSPLAY_NO_PROGRESS="1", RUST_LOG="warn")
    env.pop("AMSPLAY_ACCOUNTS", None)
    out = subprocess.run([str(AMSPLAY), "run", "bench/encode.rhai", str(src)], check=True, env=env,
                         capture_output=True, text=True, cwd=ROOT).stdout
    secs = float(re.search(r"seconds=([\d.]+)", out).group(1))
    rows.append(("amsplay emulator job (encode, upload, register)", secs))
    print(rows[-1], flush=True)
    shutil.rmtree(work, ignore_errors=True)
    write(rows, one)


def write(rows, one):
    cpu = benchdoc_cpu()
    lines = ["## Encoding (`bench/encode`)", "",
             f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores ({cpu}), one run each, the same {SECONDS} s 1080p30 "
             f"source (test pattern + tone), the \"Adaptive Streaming\" ladder ({len(LADDER)} rungs, "
             + "/".join(str(k) for *_, k in LADDER) + " kbps) + AAC 128 kbps, x264 `veryfast`.", "",
             "| case | seconds | real-time factor | vs one pass |", "|---|---:|---:|---:|"]
    for case, secs in rows:
        lines.append(f"| {case} | {secs:.1f} | {SECONDS / secs:.2f}× | {secs / one:.2f}× |")
    write_section("encode", lines)


if __name__ == "__main__":
    main()
