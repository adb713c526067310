"""The origin's memory against its cache budget (see bench/origin_memory). One encode on the
local environment, then for each budget a copy of datacenter A's emulator (its database
copied, storage read directly) started with `--origin-cache-mb BUDGET`: its RSS before and
after every fragment is fetched in Smooth and in DASH, twice. The growth should stay near the
budget (plus the presentation's index and the allocator's own slack), whatever the content."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdoc import cpu, write_section  # noqa: E402
from origin import Local, fetch_all, fragments, rss_kb, sh  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUDGETS_MB = [8, 32]


def smooth_fragments(base, manifest):
    """Every fragment URL of a Smooth manifest: each StreamIndex's bitrates times its chunks
    (`<c t= d=>`, times accumulated in 10 MHz ticks)."""
    urls = []
    for block in re.findall(r"<StreamIndex\b(.*?)</StreamIndex>", manifest, re.S):
        kind = re.search(r'Type="(\w+)"', block).group(1)
        rates = re.findall(r'<QualityLevel[^>]*Bitrate="(\d+)"', block)
        t, times = 0, []
        for attrs in re.findall(r"<c\b([^>]*)/?>", block):
            start = re.search(r'\bt="(\d+)"', attrs)
            if start:
                t = int(start.group(1))
            times.append(t)
            t += int(re.search(r'\bd="(\d+)"', attrs).group(1))
        urls += [f"{base}/QualityLevels({b})/Fragments({kind}={x})" for b in rates for x in times]
    return urls


def measure(binary, work, status, origin_a, rel, budget, extra_env=None):
    dc = next(d for d in status["datacenters"] if d["name"] == "dc-a")
    copy = work / f"direct-{budget}-{len(extra_env or {})}"
    shutil.copytree(work / "local/media/dc-a", copy)
    env = dict(os.environ, AMSPLAY_MEDIA_KEY=dc["media_key"], AMSPLAY_DIRECT=dc["connection_string"],
               RUST_LOG="warn", **(extra_env or {}))
    env.pop("AMSPLAY_ACCOUNTS", None)
    p = subprocess.Popen([str(binary), "serve", "--account", dc["media_account"], "--storage", "AMSPLAY_DIRECT",
                          "--listen", "127.0.0.1:0", "--data-dir", str(copy), "--origin-cache-mb", str(budget)],
                         env=env, stdout=subprocess.PIPE, text=True)
    try:
        url = p.stdout.readline().strip().split("listening on ", 1)[1]
        base = f"{url}/{rel}"
        mpd = urllib.request.urlopen(f"{base}/manifest(format=mpd-time-csf)").read().decode()
        ism = urllib.request.urlopen(f"{base}/manifest").read().decode()
        dash = fragments(base, mpd)
        smooth = smooth_fragments(base, ism)
        time.sleep(1)
        before = rss_kb(p.pid) / 1024
        total = 0
        for _ in range(2):
            for urls in (dash, smooth):
                _, n, _ = fetch_all(urls)
                total += n
        time.sleep(1)
        after, peak = rss_kb(p.pid) / 1024, rss_kb(p.pid, "VmHWM") / 1024
        return {"budget": budget, "env": " ".join(f"{k}={v}" for k, v in (extra_env or {}).items()), "before": before, "after": after, "peak": peak,
                "fetched_mb": total / 1e6, "distinct_mb": total / 2e6}
    finally:
        p.terminate()
        p.wait()


def main():
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    binary = ROOT / "target/release/amsplay"
    work = Path(tempfile.mkdtemp(prefix="amsplay-origin-memory-"))
    src = work / "src.mp4"
    sh("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
       "testsrc2=size=1920x1080:rate=30:duration=20", "-f", "lavfi", "-i",
       "sine=frequency=1000:sample_rate=48000:duration=20", "-c:v", "libx264", "-preset", "fast",
       "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(src))
    local = Local(binary, work)
    local.run("local", "up")
    try:
        out = local.run("run", str(ROOT / "scripts/failover.rhai"), str(src))
        status = json.loads(local.run("local", "status", "--json"))
        direct = [d["media_api"].rsplit("/api/", 1)[0] for d in status["datacenters"]]
        rel = re.search(r"Original Locator Path: http://[^/]+/(\S+)/manifest", out).group(1)
        results = [measure(binary, work, status, direct[0], rel, b) for b in BUDGETS_MB]
        # EXTRA_ENV="NAME=VALUE …" measures the same again with those variables set (allocator
        # settings, say), side by side.
        extra = dict(kv.split("=", 1) for kv in os.environ.get("EXTRA_ENV", "").split())
        if extra:
            results += [measure(binary, work, status, direct[0], rel, b, extra) for b in BUDGETS_MB]
    finally:
        local.run("local", "down")
        shutil.rmtree(work, ignore_errors=True)
    for r in results:
        print(r, flush=True)
    head = sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD").strip()
    lines = ["## Streaming origin memory against its cache budget (`bench/origin_memory`)", "",
             f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores ({cpu()}); release build of {head}; a 20 s 1080p "
             f"encode; every fragment fetched in DASH and in Smooth (distinct bodies, "
             f"{results[0]['distinct_mb']:.0f} MB in all), twice, 8 at a time, from an origin started with "
             "`--origin-cache-mb BUDGET`. RSS in MB.", "",
             "| budget | RSS before | RSS after | peak RSS | growth | growth / budget |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        growth = r["after"] - r["before"]
        lines.append(f"| {r['budget']} MiB | {r['before']:.1f} | {r['after']:.1f} | {r['peak']:.1f} | "
                     f"{growth:.1f} | {growth / (r['budget'] * 1.048576):.2f} |")
    write_section("origin-memory", lines)


if __name__ == "__main__":
    sys.exit(main())
