"""Origin benchmark (see bench/origin). Writes the "Streaming origin" section of docs/bench.md."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from benchdoc import cpu as benchdoc_cpu, write_section

ROOT = Path(__file__).resolve().parent.parent
AMSPLAY = str(ROOT / "target/release/amsplay")


def wrk(url, threads=2, conns=32, secs=10):
    out = subprocess.run(["wrk", "--latency", f"-t{threads}", f"-c{conns}", f"-d{secs}s", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    mbs = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    scale = {"B": 1 / 1e6, "KB": 1 / 1024, "MB": 1, "GB": 1024}[mbs.group(2)]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    return rps, float(mbs.group(1)) * scale, lat.get("50"), lat.get("99")


def main():
    work = Path(tempfile.mkdtemp(prefix="amsplay-origin-"))
    work.chmod(0o755)  # nginx's workers run as nobody
    env = dict(os.environ, AMSPLAY_LOCAL_DIR=str(work / "local"), AMSPLAY_NO_PROGRESS="1", RUST_LOG="warn")
    env.pop("AMSPLAY_ACCOUNTS", None)
    run = lambda *a: subprocess.run([AMSPLAY, *a], check=True, env=env, capture_output=True, text=True, cwd=work).stdout
    src = work / "src.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1920x1080:rate=30:duration=20", "-f", "lavfi", "-i",
                    "sine=frequency=1000:sample_rate=48000:duration=20", "-c:v", "libx264", "-preset", "fast",
                    "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(src)], check=True)
    run("local", "up")
    rows = []
    try:
        out = run("run", str(ROOT / "scripts/failover.rhai"), str(src))
        origin_a = re.search(r"Original Locator Path: (\S+)/manifest", out).group(1)
        status = json.loads(run("local", "status", "--json"))
        front = status["front_door"]
        rel = origin_a.split("/", 3)[3]
        mpd = urllib.request.urlopen(f"{origin_a}/manifest(format=mpd-time-csf)").read().decode()
        top = re.search(r'bandwidth="(\d+)"', mpd).group(1)
        times = re.findall(r'<S t="(\d+)"', mpd.split("</Representation>")[0])
        frag_path = f"QualityLevels({top})/Fragments(video={times[2]},format=mpd-time-csf)"
        frag_url = f"{origin_a}/{frag_path}"
        body = urllib.request.urlopen(frag_url).read()
        size_mb = len(body) / 1e6
        # nginx serving the same bytes as a static file.
        www = work / "www"
        www.mkdir()
        (www / "fragment.m4s").write_bytes(body)
        conf = work / "nginx.conf"
        conf.write_text(f"""
worker_processes 2; pid {work}/nginx.pid; error_log {work}/nginx-error.log; daemon off;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  server {{ listen 127.0.0.1:18089; root {www}; }} }}
""")
        ngx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)])
        time.sleep(1)
        try:
            served = urllib.request.urlopen("http://127.0.0.1:18089/fragment.m4s").read()
            assert served == body, "nginx must serve the same bytes"
            rps, mbs, p50, p99 = wrk("http://127.0.0.1:18089/fragment.m4s")
            rows.append((f"nginx, static file ({size_mb:.2f} MB)", rps, mbs, p50, p99))
            print(rows[-1], flush=True)
        finally:
            ngx.terminate()
            ngx.wait()
        rps, mbs, p50, p99 = wrk(frag_url)
        rows.append((f"amsplay origin, same fragment, warm cache", rps, mbs, p50, p99))
        print(rows[-1], flush=True)
        rps, mbs, p50, p99 = wrk(f"{front}/{rel}/{frag_path}")
        rows.append((f"through the front door, warm cache", rps, mbs, p50, p99))
        print(rows[-1], flush=True)
        # Cold: restart origin A (empty cache) and fetch every fragment of every rung once.
        (work / "restart.rhai").write_text('let e = local_env(); e.stop("dc-a"); e.start("dc-a");')
        run("run", str(work / "restart.rhai"))
        urls = []
        for rep in mpd.split("<Representation ")[1:]:
            bw = re.search(r'bandwidth="(\d+)"', rep).group(1)
            kind = "video" if ' width="' in rep else "audio"
            urls += [f"{origin_a}/QualityLevels({bw})/Fragments({kind}={t},format=mpd-time-csf)" for t in re.findall(r'<S t="(\d+)"', rep)]
        t0 = time.perf_counter()
        res = subprocess.run(["xargs", "-P", "8", "-n", "1", "curl", "-sf", "-o", "/dev/null", "-w", "%{size_download}\\n"],
                             input="\n".join(urls), capture_output=True, text=True, check=True)
        secs = time.perf_counter() - t0
        total = sum(int(x) for x in res.stdout.split())
        rows.append((f"amsplay origin, cold (every fragment once, 8 at a time)", len(urls) / secs, total / 1e6 / secs, None, None))
        print(rows[-1], flush=True)
        # Added latency of the front door, one request at a time.
        d = wrk(frag_url, threads=1, conns=1, secs=5)
        f = wrk(f"{front}/{rel}/{frag_path}", threads=1, conns=1, secs=5)
        latency = (d[2], f[2])
        print("latency direct/front", latency, flush=True)
        drill = run("run", str(ROOT / "scripts/drill.rhai"), "12")
        print(drill, flush=True)
    finally:
        run("local", "down")
    failed = re.search(r"failed: (\d+)", drill).group(1)
    requests = re.search(r"requests: (\d+)", drill).group(1)
    moved = re.search(r"traffic moved ([\d.e-]+) s", drill)
    back = re.search(r"traffic came back ([\d.e-]+) s", drill)
    write(rows, latency, requests, failed, moved.group(1) if moved else "n/a", back.group(1) if back else "n/a", size_mb)
    shutil.rmtree(work, ignore_errors=True)


def fmt(x):
    return x if x == "n/a" else f"{float(x):.3f}"


def write(rows, latency, requests, failed, moved, back, size_mb):
    cpu = benchdoc_cpu()
    nginx_rps = rows[0][1]
    lines = ["## Streaming origin and front door (`bench/origin`)", "",
             f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores ({cpu}); release build; wrk `-t2 -c32`, 10 s, on loopback "
             f"beside the servers; the fragment is the top rung's third 2 s DASH fragment of a 20 s 1080p encode "
             f"({size_mb:.2f} MB).", "",
             "| case | requests/s | MB/s | p50 | p99 | vs nginx |", "|---|---:|---:|---:|---:|---:|"]
    for case, rps, mbs, p50, p99 in rows:
        lines.append(f"| {case} | {rps:,.0f} | {mbs:,.0f} | {p50 or ''} | {p99 or ''} | {rps / nginx_rps:.0%} |")
    lines += ["", f"- Front door, one request at a time: p50 {latency[0]} direct to the origin, {latency[1]} through the front door.",
              f"- Drill (`scripts/drill.rhai 12`, datacenter A stopped for 4 s and restored): {requests} requests, "
              f"{failed} failed; traffic moved {fmt(moved)} s after the outage and came back "
              f"{fmt(back)} s after the restore (Azure Traffic Manager needs about 40 s)."]
    write_section("origin", lines)


if __name__ == "__main__":
    main()
