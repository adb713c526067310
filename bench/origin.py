"""Origin, front door and edge benchmark (see bench/origin). Side by side in one run: this
checkout against the baseline revision (before the origin became its own component and the
front door streamed), on the same 20 s 1080p encode. The environments are up at once for the
cold rate, their runs interleaved, so the shared machine's slow and fast minutes fall on all
alike; every Azurite runs with this checkout's heap setting (the baseline's through a `node`
shim), and a third environment of this checkout runs Azurite as the baseline started it, so
that the setting's share of the cold rate shows apart from the origin's. Writes the "Streaming
origin" section of docs/bench.md.

Measured for both binaries: warm requests/s of one fragment from the origin and through the
front door (wrk); peak RSS of a front door with 50 slow readers of the largest fragment; the
cold rate (every fragment once, 8 at a time, after the origin restarted); the latency of the
first requests through the front door right after datacenter A stops (B as the walkthrough
left it). For this checkout only: nginx as the edge (`amsplay front --emit nginx`), and every
drill mode through the front door and through nginx.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

from benchdoc import cpu as benchdoc_cpu, write_section

ROOT = Path(__file__).resolve().parent.parent
BASELINE = os.environ.get("BASELINE", "b19f8b6")
MODES = ["datacenter", "storage-down", "storage-hang", "origin-503", "origin-slow", "flapping", "endpoint-stopped", "both-down"]
DRILL_SECONDS = "12"


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def build_baseline():
    """The baseline's release binary, built once into target/baseline/ (sharing target/'s deps)."""
    out = ROOT / "target/baseline" / f"amsplay-{BASELINE}"
    if out.exists():
        return out
    tree = Path(tempfile.mkdtemp(prefix="amsplay-baseline-"))
    sh("git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), BASELINE)
    try:
        print(f"building the baseline {BASELINE} (once)", flush=True)
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=tree, check=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target")))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "target/release/amsplay", out)
    finally:
        sh("git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree))
    return out


def wrk(url, threads=2, conns=32, secs=10):
    out = sh("wrk", "--latency", f"-t{threads}", f"-c{conns}", f"-d{secs}s", url)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    mbs = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    scale = {"B": 1 / 1e6, "KB": 1 / 1024, "MB": 1, "GB": 1024}[mbs.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert not non2xx, f"{url}: {non2xx.group(0)}"
    return rps, float(mbs.group(1)) * scale


def fetch_all(urls, parallel=8):
    """Every URL once, `parallel` at a time over kept-alive connections:
    (seconds, bytes, per-request seconds in order)."""
    local = threading.local()

    def get(url):
        u = urlparse(url)
        if getattr(local, "host", None) != u.netloc:
            local.c, local.host = http.client.HTTPConnection(u.hostname, u.port, timeout=30), u.netloc
        t = time.perf_counter()
        local.c.request("GET", url[url.index(u.path):])
        r = local.c.getresponse()
        body = r.read()
        assert r.status == 200, f"{url}: {r.status}"
        return len(body), time.perf_counter() - t

    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as ex:
        res = list(ex.map(get, urls))
    return time.perf_counter() - t0, sum(n for n, _ in res), [s for _, s in res]


def rss_kb(pid, field="VmRSS"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def slow_readers(url, pid, n=50, secs=10):
    """`n` clients reading `url` at 80 KB/s for `secs`: (peak RSS MB of `pid`, RSS MB after)."""
    u = urlparse(url)
    path = url[url.index(u.path):]

    def reader():
        s = socket.create_connection((u.hostname, u.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        end = time.time() + secs
        while time.time() < end:
            if not s.recv(4096):
                break
            time.sleep(0.05)
        s.close()

    threads = [threading.Thread(target=reader) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    peak = rss_kb(pid, "VmHWM")
    time.sleep(2)
    return peak / 1024, rss_kb(pid) / 1024


def start_front(binary, origins, extra=()):
    """A front door process of `binary` before `origins`: (process, url)."""
    args = [str(binary), "front", *extra]
    for o in origins:
        args += ["--origin", o]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = p.stdout.readline().strip().split()[-1]
    return p, url


# How this checkout starts Azurite's node (src/azurite.rs: its first old-generation collection
# at 128 MiB, so that an Azurite that idled does not mark its whole heap every few MB of a burst).
AZURITE_HEAP = "--initial-old-space-size=128"


def node_shim(work, heap):
    """A folder holding a `node` that runs the real one with Azurite's heap setting `heap`:
    "add" gives it (the baseline's Azurite then runs as this checkout's does, so that cold rates
    compare origins, not storage settings), "strip" removes it (this checkout's Azurite as the
    baseline ran it)."""
    real = shutil.which("node")
    shim = work / "node-shim"
    shim.mkdir()
    body = {"add": f'exec {real} {AZURITE_HEAP} "$@"\n',
            "strip": 'first=1\nfor a in "$@"; do\n  [ $first = 1 ] && { set --; first=0; }\n'
                     f'  case "$a" in {AZURITE_HEAP.split("=")[0]}=*) ;; *) set -- "$@" "$a" ;; esac\n'
                     f'done\nexec {real} "$@"\n'}[heap]
    (shim / "node").write_text("#!/bin/sh\n" + body)
    (shim / "node").chmod(0o755)
    return shim


class Local:
    """A local environment of one binary in its own folder; `heap` ("add" or "strip") puts a
    `node_shim` first on its PATH."""

    def __init__(self, binary, work, heap=None):
        self.binary, self.work = str(binary), work
        self.env = dict(os.environ, AMSPLAY_LOCAL_DIR=str(work / "local"), AMSPLAY_NO_PROGRESS="1",
                        RUST_LOG="warn")
        self.env.pop("AMSPLAY_ACCOUNTS", None)
        if heap:
            self.env["PATH"] = f"{node_shim(work, heap)}:{self.env['PATH']}"

    def run(self, *args):
        return sh(self.binary, *args, env=self.env, cwd=self.work)

    def script(self, text, *args):
        f = self.work / "step.rhai"
        f.write_text(text)
        return self.run("run", str(f), *args)


def fragments(origin, mpd):
    urls = []
    for rep in mpd.split("<Representation ")[1:]:
        bw = re.search(r'bandwidth="(\d+)"', rep).group(1)
        kind = "video" if ' width="' in rep else "audio"
        urls += [f"{origin}/QualityLevels({bw})/Fragments({kind}={t},format=mpd-time-csf)"
                 for t in re.findall(r'<S t="(\d+)"', rep)]
    return urls


class Subject:
    """One binary's local environment, published with `rev`'s own walkthrough playbook; `heap`
    as for `Local`."""

    def __init__(self, binary, label, rev, src, work, heap=None):
        work.mkdir()
        self.local = local = Local(binary, work, heap)
        self.binary, self.work = binary, work
        playbook = work / "failover.rhai"
        playbook.write_text(sh("git", "-C", str(ROOT), "show", f"{rev}:scripts/failover.rhai") if rev else
                            (ROOT / "scripts/failover.rhai").read_text())
        local.run("local", "up")
        self.r = r = {"label": label, "colds": []}
        try:
            out = local.run("run", str(playbook), str(src))
            self.status = json.loads(local.run("local", "status", "--json"))
            # The origins themselves (the emulators' ports), not the fault points before them.
            self.direct = [d["media_api"].rsplit("/api/", 1)[0] for d in self.status["datacenters"]]
            self.rel = re.search(r"Original Locator Path: http://[^/]+/(\S+)/manifest", out).group(1)
            self.origin_a = f"{self.direct[0]}/{self.rel}"
            mpd = urllib.request.urlopen(f"{self.origin_a}/manifest(format=mpd-time-csf)").read().decode()
            self.frags = fragments(self.origin_a, mpd)
            top = re.search(r'bandwidth="(\d+)"', mpd).group(1)
            times = re.findall(r'<S t="(\d+)"', mpd.split("</Representation>")[0])
            self.frag_path = f"QualityLevels({top})/Fragments(video={times[2]},format=mpd-time-csf)"
            body = urllib.request.urlopen(f"{self.origin_a}/{self.frag_path}").read()
            r["fragment_mb"] = len(body) / 1e6
        except BaseException:
            local.run("local", "down")
            raise

    def cold(self):
        """Origin A restarted (empty caches), then every fragment once, 8 at a time."""
        self.local.script('let e = local_env(); e.stop("dc-a"); e.start("dc-a");')
        time.sleep(1)
        secs, total, _ = fetch_all(self.frags)
        self.r["colds"].append((len(self.frags) / secs, total / 1e6 / secs))


def cold_side_by_side(subjects, rounds=9):
    """The cold rate of every subject, their runs interleaved (A, B, A, B, …) so that the
    shared machine's slow and fast minutes fall on both alike; the median of `rounds` each."""
    for _ in range(rounds):
        for subject in subjects:
            subject.cold()
    for subject in subjects:
        colds = subject.r["colds"]
        subject.r["cold"] = sorted(colds)[len(colds) // 2]
        subject.r["cold_range"] = (min(c[1] for c in colds), max(c[1] for c in colds))
        print(subject.r["label"], "cold", subject.r["cold"], flush=True)


def measure(subject, edges):
    """Everything else measured for one subject; `edges` adds nginx and the drills. Takes its
    environment down."""
    local, r, work, binary = subject.local, subject.r, subject.work, subject.binary
    label, status, direct, rel = r["label"], subject.status, subject.direct, subject.rel
    front, origin_a, frags, frag_path = status["front_door"], subject.origin_a, subject.frags, subject.frag_path
    try:
        if edges:
            # The same origin on the same data, reading Azurite directly instead of through
            # the local environment's fault point: what the extra hop costs a cold origin.
            r["cold_direct"] = cold_direct(binary, local, work, status, frags, direct[0])
            print(label, "cold, storage direct", r["cold_direct"], flush=True)
        r["azurite"] = azurite_ceiling(local, rel)
        r["azurite_large"] = azurite_ceiling(local, rel, 8 << 20)
        print(label, "cold", r["cold"], "azurite", r["azurite"], r["azurite_large"], flush=True)
        # Warm: the same fragment from the origin, and through a front door of its own.
        r["origin"] = wrk(f"{origin_a}/{frag_path}")
        fp, furl = start_front(binary, direct)
        try:
            time.sleep(1)
            r["front"] = wrk(f"{furl}/{rel}/{frag_path}")
        finally:
            fp.terminate()
            fp.wait()
        print(label, "warm origin", r["origin"], "front", r["front"], flush=True)
        if edges:
            # The front door as a plain proxy (its cache off), as the baseline's was.
            fp, furl = start_front(binary, direct, ["--no-cache"])
            try:
                time.sleep(1)
                r["front_plain"] = wrk(f"{furl}/{rel}/{frag_path}")
            finally:
                fp.terminate()
                fp.wait()
            print(label, "front, no cache", r["front_plain"], flush=True)
        # 50 slow readers of the fragment, on a fresh front door (its peak RSS is theirs).
        fp, furl = start_front(binary, direct)
        try:
            time.sleep(1)
            r["slow"] = slow_readers(f"{furl}/{rel}/{frag_path}", fp.pid)
        finally:
            fp.terminate()
            fp.wait()
        print(label, "slow readers peak/after MB", r["slow"], flush=True)
        if edges:
            nginx_edge(local, work, r, rel, frag_path)
            r["drills"] = drills(local, work)
        # Right after a failover: A's emulator is killed, every fragment through the local
        # environment's front door, 8 at a time; B as the walkthrough left it.
        state = json.loads((work / "local/state.json").read_text())
        os.kill(next(m["pid"] for m in state["media"] if m["datacenter"] == "dc-a"), signal.SIGKILL)
        through = [f"{front}/{u.split('/', 3)[3]}" for u in frags]
        _, _, lat = fetch_all(through)
        first = sorted(lat[:100])
        r["failover"] = (statistics.median(first) * 1000, first[max(0, int(len(first) * 0.99) - 1)] * 1000)
        print(label, "first requests after failover p50/p99 ms", r["failover"], flush=True)
    finally:
        local.run("local", "down")
    return r


def cold_direct(binary, local, work, status, frags, origin_a):
    """Cold rate of a copy of datacenter A's emulator (its database copied while it is stopped)
    that reads Azurite directly: median of 5 fresh starts, as (fragments/s, MB/s)."""
    dc = next(d for d in status["datacenters"] if d["name"] == "dc-a")
    local.script('local_env().stop("dc-a");')
    copy = work / "direct-a"
    shutil.copytree(work / "local/media/dc-a", copy)
    local.script('local_env().start("dc-a");')
    env = dict(os.environ, AMSPLAY_MEDIA_KEY=dc["media_key"], AMSPLAY_DIRECT=dc["connection_string"],
               RUST_LOG="warn")
    env.pop("AMSPLAY_ACCOUNTS", None)
    rates = []
    for _ in range(5):
        p = subprocess.Popen([str(binary), "serve", "--account", dc["media_account"], "--storage", "AMSPLAY_DIRECT",
                              "--listen", "127.0.0.1:0", "--data-dir", str(copy)],
                             env=env, stdout=subprocess.PIPE, text=True)
        try:
            url = p.stdout.readline().strip().split("listening on ", 1)[1]
            urls = [u.replace(origin_a, url, 1) for u in frags]
            time.sleep(1)
            secs, total, _ = fetch_all(urls)
            rates.append((len(urls) / secs, total / 1e6 / secs))
        finally:
            p.terminate()
            p.wait()
    return sorted(rates)[2]


def azurite_ceiling(local, rel, chunk=512 << 10):
    """Azurite's own rate for ranged reads of `chunk` bytes (512 KiB: about a fragment; 8 MiB:
    the origin's read-ahead), 8 at a time, over every MP4 of the encode: the most a cold origin
    on it could reach."""
    text = local.script("""
        let a = account("dc-a");
        let x = a.assets().filter(|x| x.name.starts_with("Encoded_"))[0];
        let c = x.uri.sub_string(x.uri.index_of("/", 8) + 1);
        c = c.sub_string(c.index_of("/") + 1);
        print(a.storage.container_sas(c, "rl", 1));
        for f in x.files.filter(|f| f.name.ends_with(".mp4")) { print(`${f.name} ${f.size}`); }
    """).strip().split("\n")
    sas, files = text[0], [(n, int(z)) for n, z in (line.split() for line in text[1:])]
    u = urlparse(sas)
    local_conn = threading.local()

    def get(task):
        name, off, size = task
        if not hasattr(local_conn, "c"):
            local_conn.c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        local_conn.c.request("GET", f"{u.path}/{name}?{u.query}", headers={
            "Range": f"bytes={off}-{min(off + chunk, size) - 1}", "x-ms-version": "2022-11-02"})
        resp = local_conn.c.getresponse()
        assert resp.status == 206, resp.status
        return len(resp.read())

    tasks = [(name, off, size) for name, size in files for off in range(0, size, chunk)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as ex:
        total = sum(ex.map(get, tasks))
    secs = time.perf_counter() - t0
    return (len(tasks) / secs, total / 1e6 / secs)


def nginx_edge(local, work, r, rel, frag_path):
    """nginx (`--emit nginx`) before the origins themselves, as a plain proxy and as a cache:
    warm requests/s of the same fragment."""
    status = json.loads(local.run("local", "status", "--json"))
    direct = [d["media_api"].rsplit("/api/", 1)[0] for d in status["datacenters"]]
    for key, extra in [("nginx_proxy", ["--no-cache"]), ("nginx", [])]:
        ngx_dir = work / key
        ngx_dir.mkdir()
        args = ["front", "--emit", "nginx", "--listen", "127.0.0.1:18090", "--nginx-dir", str(ngx_dir)] + extra
        for o in direct:
            args += ["--origin", o]
        conf = work / f"{key}.conf"
        conf.write_text(local.run(*args))
        p = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(ngx_dir), "-g", "daemon off; user root;"],
                             stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            url = f"http://127.0.0.1:18090/{rel}/{frag_path}"
            urllib.request.urlopen(url).read()
            r[key] = wrk(url)
            print(key, r[key], flush=True)
        finally:
            p.terminate()
            p.wait()


def drills(local, work):
    """Every drill mode through the front door and through nginx (no cache)."""
    status = json.loads(local.run("local", "status", "--json"))
    args = ["front", "--emit", "nginx", "--listen", "127.0.0.1:18091", "--nginx-dir", str(work / "ngx2"),
            "--timeout-ms", "1000", "--no-cache"]
    for d in status["datacenters"]:
        args += ["--origin", d["origin"]]
    (work / "ngx2").mkdir()
    conf = work / "nginx-drill.conf"
    conf.write_text(local.run(*args))
    p = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work / "ngx2"), "-g", "daemon off; user root;"],
                         stderr=subprocess.DEVNULL)
    rows = []
    try:
        time.sleep(1)
        for mode in MODES:
            for edge, url in [("front door", None), ("nginx", "http://127.0.0.1:18091")]:
                args = ["run", str(ROOT / "scripts/drill.rhai"), mode, DRILL_SECONDS] + ([url] if url else [])
                try:
                    out = local.run(*args)
                except subprocess.CalledProcessError as e:
                    out = e.stdout + e.stderr
                grab = lambda pat: (m.group(1) if (m := re.search(pat, out)) else None)
                rows.append(dict(mode=mode, edge=edge, requests=grab(r"requests: (\d+)"),
                                 failed=grab(r"failed: (\d+)"), worst=grab(r"worst latency: ([\d.]+) ms"),
                                 after=grab(r"after detection: ([\d.]+) ms"),
                                 stall=grab(r"longest stall \(3-segment buffer\): ([\d.]+) ms"),
                                 moved=grab(r"traffic moved ([\d.e-]+) s"),
                                 back=grab(r"traffic came back ([\d.e-]+) s"),
                                 again=grab(r"served again ([\d.e-]+) s")))
                print(rows[-1], flush=True)
    finally:
        p.terminate()
        p.wait()
    return rows


def main():
    baseline = build_baseline()
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="amsplay-origin-"))
    work.chmod(0o755)
    src = work / "src.mp4"
    sh("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
       "testsrc2=size=1920x1080:rate=30:duration=20", "-f", "lavfi", "-i",
       "sine=frequency=1000:sample_rate=48000:duration=20", "-c:v", "libx264", "-preset", "fast",
       "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(src))
    this = ROOT / "target/release/amsplay"
    subjects = []
    try:
        # Every Azurite with this checkout's heap setting; a third environment of this checkout
        # runs Azurite without it, as the baseline's local environment did.
        first = Subject(baseline, f"baseline {BASELINE}", BASELINE, src, work / "before", heap="add")
        subjects.append(first)
        second = Subject(this, "this checkout", None, src, work / "after")
        subjects.append(second)
        third = Subject(this, "this checkout, Azurite's default heap", None, src, work / "plain", heap="strip")
        subjects.append(third)
        cold_side_by_side(subjects)
    except BaseException:
        for subject in subjects:
            subject.local.run("local", "down")
        raise
    third.local.run("local", "down")
    second.r["cold_plain_heap"], second.r["cold_plain_heap_range"] = third.r["cold"], third.r["cold_range"]
    try:
        before = measure(first, edges=False)
    except BaseException:
        second.local.run("local", "down")
        raise
    after = measure(second, edges=True)
    write(before, after)
    shutil.rmtree(work, ignore_errors=True)


def f1(x):
    return "–" if x is None else f"{float(x):,.0f}"


def f3(x):
    return "–" if x is None else f"{float(x):.2f}"


def write(before, after):
    head = sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD").strip()
    lines = ["## Streaming origin, front door and edge (`bench/origin`)", "",
             f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores ({benchdoc_cpu()}); release builds of "
             f"{head} (this checkout) and {BASELINE} (baseline, before the origin became its own component) in one run, "
             f"on the same 20 s 1080p encode; wrk `-t2 -c32` 10 s on loopback beside the servers (all on the same 2 cores); "
             f"the warm fragment is the top rung's third 2 s DASH fragment ({after['fragment_mb']:.2f} MB).", "",
             "| | baseline | this checkout | ratio |", "|---|---:|---:|---:|"]

    def row(name, b, a, unit=""):
        ratio = f"{a / b:.2f}×" if b else ""
        lines.append(f"| {name} | {b:,.1f}{unit} | {a:,.1f}{unit} | {ratio} |")

    row("origin, warm, requests/s", before["origin"][0], after["origin"][0])
    row("front door, warm, requests/s", before["front"][0], after["front"][0])
    lines.append(f"| front door as a share of the origin | {before['front'][0] / before['origin'][0]:.0%} | "
                 f"{after['front'][0] / after['origin'][0]:.0%} | |")
    if "front_plain" in after:
        lines.append(f"| front door with `--no-cache` (a plain proxy, as the baseline's), warm, requests/s | | "
                     f"{after['front_plain'][0]:,.1f} | {after['front_plain'][0] / before['front'][0]:.2f}× |")
        lines.append(f"| front door with `--no-cache` as a share of the origin | | "
                     f"{after['front_plain'][0] / after['origin'][0]:.0%} | |")
    row("origin, cold, fragments/s (every fragment once, 8 at a time)", before["cold"][0], after["cold"][0])
    row("origin, cold, MB/s (median of 9 restarts, interleaved with the baseline's)", before["cold"][1], after["cold"][1])
    lines.append(f"| origin, cold, MB/s, slowest and fastest of the 9 | {before['cold_range'][0]:,.1f}–"
                 f"{before['cold_range'][1]:,.1f} | {after['cold_range'][0]:,.1f}–{after['cold_range'][1]:,.1f} | |")
    if "cold_plain_heap" in after:
        plain, (lo, hi) = after["cold_plain_heap"][1], after["cold_plain_heap_range"]
        lines.append(f"| this checkout with Azurite's node at its default heap (as the baseline started it), cold, "
                     f"MB/s (slowest–fastest) | | {plain:,.1f} ({lo:,.1f}–{hi:,.1f}) | {plain / before['cold'][1]:.2f}× |")
    row("Azurite alone, ranged reads of 512 KiB, 8 at a time, MB/s", before["azurite"][1], after["azurite"][1])
    row("Azurite alone, ranged reads of 8 MiB, 8 at a time, MB/s", before["azurite_large"][1], after["azurite_large"][1])
    if "cold_direct" in after:
        lines.append(f"| this checkout's origin reading Azurite directly (no fault point), cold, MB/s | | "
                     f"{after['cold_direct'][1]:,.1f} | {after['cold_direct'][1] / before['cold'][1]:.2f}× |")
    row(f"front door peak RSS, 50 slow readers of the fragment, MB", before["slow"][0],
        after["slow"][0])
    row("front door RSS after they left, MB", before["slow"][1], after["slow"][1])
    row("first 100 requests after A is killed, through the front door, p50 ms", before["failover"][0], after["failover"][0])
    row("first 100 requests after A is killed, through the front door, p99 ms", before["failover"][1], after["failover"][1])
    if "nginx" in after:
        o = after["origin"][0]
        lines += ["", f"- The same fragment through nginx (`amsplay front --emit nginx`) before the same origins: "
                      f"{after['nginx_proxy'][0]:,.0f} requests/s as a plain proxy ({after['nginx_proxy'][0] / o:.0%} of the "
                      f"origin; the front door: {after['front'][0] / o:.0%}), {after['nginx'][0]:,.0f} from its cache "
                      f"({after['nginx'][0] / o:.0%}). On two cores shared by wrk, the origin and the proxy, a proxy "
                      "that moves every byte through user space twice more cannot come near the origin's rate; only "
                      "a cache does.",
                  f"- A cold origin reads from Azurite (one node process): {after['azurite'][1]:,.0f} MB/s alone in "
                  f"ranges of a fragment's size, {after['azurite_large'][1]:,.0f} MB/s in 8 MiB ranges with nothing "
                  f"else running. Cold, the origin reaches {after['cold'][1] / before['cold'][1]:.2f}× the baseline "
                  f"(the target: 4×, {4 * before['cold'][1]:,.0f} MB/s), "
                  f"{after['cold'][1] / after['azurite_large'][1]:.0%} of Azurite's large-range rate while it also "
                  "indexes, packages and caches on the same two cores as Azurite, the fault point and the client. "
                  "It reads each rendition in fixed runs of up to 8 MiB (one read a run, whoever asks first), the "
                  "whole file where a run leaves little of it, reads ahead its own rendition and the same time of "
                  "every other one, behind the clients' reads, packages the file's other track from the same "
                  "bytes, and tags bodies with XXH3 rather than MD5."]
        if "cold_plain_heap" in after:
            lines.append(f"- Every Azurite in these cold runs started node with `{AZURITE_HEAP}`, as this checkout's "
                         "local environment does (src/azurite.rs; the baseline's through a `node` shim), so the "
                         "ratio compares origins on the same storage. Without it, an Azurite that idled a few "
                         "seconds has its heap shrunk to about its live size, and a burst of reads then costs "
                         "it a full mark-compact every few MB: this checkout's origin on such an Azurite reached "
                         f"{after['cold_plain_heap'][1]:,.1f} MB/s in the same rounds.")
        if "cold_direct" in after:
            cost = 1 - after['cold'][1] / after['cold_direct'][1]
            lines.append(f"- The local environment puts a fault point (a TCP proxy for outage drills) between each "
                         f"emulator and storage; the same origin reading Azurite directly reaches "
                         f"{after['cold_direct'][1]:,.1f} MB/s cold against {after['cold'][1]:,.1f} through it: " +
                         (f"the hop costs {cost:.0%} of a cold origin's rate" if cost > 0.02 else
                          "no measurable cost (the difference is within run-to-run noise)") +
                         ", and a production origin has no such hop.")
    lines += ["", f"Every drill mode (`scripts/drill.rhai MODE {DRILL_SECONDS} [EDGE]`), through amsplay's front door "
                  "and through nginx (`--emit nginx --no-cache --timeout-ms 1000`: every request reaches an origin). "
                  "Times in ms; moved/back/again in s (again: after B returns from a both-down outage).", "",
              "| mode | edge | requests | failed | worst | after detection | stall | moved | back | again |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d in after.get("drills", []):
        lines.append(f"| {d['mode']} | {d['edge']} | {d['requests'] or '–'} | {d['failed'] or '–'} | {f1(d['worst'])} | "
                     f"{f1(d['after'])} | {f1(d['stall'])} | {f3(d['moved'])} | {f3(d['back'])} | {f3(d['again'])} |")
    write_section("origin", lines)


if __name__ == "__main__":
    sys.exit(main())
