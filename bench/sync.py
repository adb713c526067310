"""Continuous replication and console benchmark (see bench/sync).

Sync: a local environment; `amsplay sync` running (its default 5 s interval, quicker for a while
after a job in A ends); a 60 s 1080p mezzanine uploaded
and encoded in A by a playbook that then publishes an origin locator. Measured from the moment
the job is Finished (the playbook prints it) to the moment B's origin answers the master
playlist under the same locator (polled every 20 ms), over 3 assets; beside it, the copy alone
(copy_blobs of the same asset from A to a fresh container in B) and the playbook's own locator
step. The aim: latency under the copy time plus 1 s.

Console: the local environment's console; a datacenter's origin stopped and healed 10 times
through the console's own drill action; each time, how long until the change reaches (a) a
client of `GET /api/events` (server-sent events) and (b) a client polling `GET /api/overview`
every second, both listening at once.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchdoc import cpu, write_section

ROOT = Path(__file__).resolve().parent.parent
AMSPLAY = ROOT / "target/release/amsplay"


class Local:
    def __init__(self, work):
        self.work = work
        self.env = dict(os.environ, AMSPLAY_LOCAL_DIR=str(work / "local"), AMSPLAY_NO_PROGRESS="1",
                        RUST_LOG="warn")
        self.env.pop("AMSPLAY_ACCOUNTS", None)

    def run(self, *args):
        return subprocess.run([str(AMSPLAY), *args], env=self.env, cwd=self.work, check=True,
                              capture_output=True, text=True).stdout

    def script(self, name, text, *args):
        f = self.work / name
        f.write_text(text)
        return self.run("run", str(f), *args)


PUBLISH = r'''
let a = account("dc-a");
let src = a.upload(ARGS[0], ARGS[1]);
let job = a.encode(src, "Adaptive Streaming", `Encoded_${ARGS[1]}`);
if job.state != "Finished" { throw `${job.errors}`; }
print("FINISHED");
let l = a.origin_locator(job.output, 30);
print(`LOCATED ${l.id}`);
print(`PATH ${l.url(job.output.primary_file)}`);
'''

COPY = r'''
let a = account("dc-a");
let b = account("dc-b");
let x = a.assets().filter(|x| x.name == ARGS[0])[0];
let t = b.create_asset(`copy-${ARGS[0]}`);
let w = b.sas_locator(t, "w", 1);
let r = copy_blobs(a.storage, x.container, b.storage, w.container);
print(`COPY ${r.seconds} ${r.bytes}`);
'''


def ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def sync_bench(local, work, mezz, runs=3):
    status = json.loads(local.run("local", "status", "--json"))
    origin_b = status["datacenters"][1]["origin"]
    sync = subprocess.Popen([str(AMSPLAY), "sync", "--state", str(work / "sync.json")],
                            env=local.env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        for i in range(runs):
            name = f"bench{i}"
            (work / "publish.rhai").write_text(PUBLISH)
            p = subprocess.Popen([str(AMSPLAY), "run", str(work / "publish.rhai"), str(mezz), name],
                                 env=local.env, cwd=work, stdout=subprocess.PIPE, text=True)
            finished = located = None
            path = None
            for line in p.stdout:
                if line.startswith("FINISHED"):
                    finished = time.monotonic()
                elif line.startswith("LOCATED"):
                    located = time.monotonic()
                elif line.startswith("PATH "):
                    path = line.split(" ", 1)[1].strip()
            p.wait()
            rel = path[path.index("/", 8):] + "(format=m3u8-aapl)"
            while not ok(origin_b + rel):
                time.sleep(0.02)
            streamable = time.monotonic()
            copy = local.script("copy.rhai", COPY, f"Encoded_{name}")
            seconds, size = next(l for l in copy.splitlines() if l.startswith("COPY")).split()[1:]
            rows.append({"latency": streamable - finished, "locator": located - finished,
                         "copy": float(seconds), "bytes": int(size)})
            print(rows[-1], flush=True)
    finally:
        sync.terminate()
        sync.wait()
    return rows


def console_bench(local, repeats=10):
    status = json.loads(local.run("local", "status", "--json"))
    console = status["console"]
    seen_sse, seen_poll = [], []
    want = {"state": None}
    lock = threading.Lock()

    def mode(overview):
        return ((overview.get("faults") or {}).get("dc-b") or {}).get("origin")

    def sse():
        try:
            with urllib.request.urlopen(console + "/api/events", timeout=600) as r:
                for raw in r:
                    line = raw.decode().strip()
                    if line.startswith("data:"):
                        m = mode(json.loads(line[5:]))
                        with lock:
                            if want["state"] and m == want["state"][0] and want["state"][2] is None:
                                want["state"][2] = time.monotonic()
        except OSError:
            return  # the environment went down: the measurements are over

    def poll():
        while True:
            try:
                with urllib.request.urlopen(console + "/api/overview", timeout=10) as r:
                    m = mode(json.loads(r.read()))
            except OSError:
                return  # the environment went down: the measurements are over

            with lock:
                if want["state"] and m == want["state"][0] and want["state"][3] is None:
                    want["state"][3] = time.monotonic()
            time.sleep(1.0)

    threading.Thread(target=sse, daemon=True).start()
    threading.Thread(target=poll, daemon=True).start()
    time.sleep(2)
    for i in range(repeats):
        target, action = ("down", "stop") if i % 2 == 0 else ("ok", "heal")
        with lock:
            want["state"] = [target, time.monotonic(), None, None]
        body = json.dumps({"datacenter": "dc-b", "action": action}).encode()
        urllib.request.urlopen(urllib.request.Request(console + "/api/fault", data=body,
                               headers={"content-type": "application/json"}), timeout=10).read()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with lock:
                s = want["state"]
                if s[2] is not None and s[3] is not None:
                    break
            time.sleep(0.01)
        with lock:
            s = want["state"]
            seen_sse.append(s[2] - s[1])
            seen_poll.append(s[3] - s[1])
    return seen_sse, seen_poll


def main():
    with tempfile.TemporaryDirectory(prefix="amsplay-sync-bench-") as d:
        work = Path(d)
        local = Local(work)
        mezz = work / "mezz.mp4"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc2=size=1920x1080:rate=30:duration=60", "-f", "lavfi", "-i",
                        "sine=frequency=440:sample_rate=48000:duration=60", "-c:v", "libx264",
                        "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                        str(mezz)], check=True)
        local.run("local", "up")
        try:
            rows = sync_bench(local, work, mezz)
            sse, poll = console_bench(local)
        finally:
            local.run("local", "down")
    med = lambda k: statistics.median(r[k] for r in rows)
    lines = [
        "## Continuous replication and the console",
        "",
        f"`bench/sync`, one run on {cpu()} (2 cores), the local environment, release build.",
        "",
        "**Sync**: a 60 s 1080p mezzanine encoded in A (\"Adaptive Streaming\"), then an origin "
        "locator published; `amsplay sync` running (its default: a pass every 5 s, every 0.1 s for "
        "15 s after a job in A ended). From the job Finished in A to B's "
        f"origin answering the master playlist under the same locator, {len(rows)} assets "
        f"({rows[0]['bytes'] / 2**20:.0f} MiB each), beside the copy alone (copy_blobs of the same "
        "asset to a fresh container in B, measured after):",
        "",
        "| asset | Finished → streamable from B | of which the playbook's locator step | copy alone | latency − copy |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows):
        lines.append(f"| {i + 1} | {r['latency']:.2f} s | {r['locator']:.2f} s | {r['copy']:.2f} s | "
                     f"{r['latency'] - r['copy']:+.2f} s |")
    lines += [
        f"| median | {med('latency'):.2f} s | {med('locator'):.2f} s | {med('copy'):.2f} s | "
        f"{med('latency') - med('copy'):+.2f} s |",
        "",
        f"Aim: under the copy time plus 1 s — {'met' if med('latency') - med('copy') < 1.0 else 'not met'} "
        "(the rest is the wait for the next pass, plus the replication's own calls: SAS locators, "
        "CreateFileInfos, B's locator and warming B's origin).",
        "",
        "**Console**: dc-b's origin stopped and healed 10 times through the console's drill action; "
        "how long until each change reached a page:",
        "",
        "| client | median | worst |",
        "|---|---|---|",
        f"| live events (`GET /api/events`) | {statistics.median(sse) * 1000:.0f} ms | {max(sse) * 1000:.0f} ms |",
        f"| polling `GET /api/overview` every 1 s | {statistics.median(poll) * 1000:.0f} ms | {max(poll) * 1000:.0f} ms |",
        "",
        f"Live events reach the page {statistics.median(poll) / max(statistics.median(sse), 1e-6):.1f}× sooner "
        "than a once-a-second poll (an action wakes the console's gathering at once).",
    ]
    write_section("sync", lines)


if __name__ == "__main__":
    sys.exit(main())
