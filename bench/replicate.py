"""Replication benchmark (see bench/replicate). One run of each case, side by side, on two
data sets; writes the "Replication" section of docs/bench.md.

Server-side, both accounts in one Azurite (the only way Azurite copies between accounts):
  (a) the walkthrough's way with the official Python SDK (serial, start copy, poll 1 s)
  (c) amsplay copy_blobs
  ceiling: Copy Blob requests from 32 threads, no listing/polling/verification
each directly and through a proxy adding 20 ms to every request (a cross-region round trip).

Streamed, two Azurite processes:
  (b) rclone copy (default, --transfers 16)
  amsplay copy_blobs mode "stream"
  raw limit: every byte downloaded from A and uploaded to B at once, 16 pipelines of
  curl GET | curl PUT, no client-side hashing or verification.
"""
import asyncio
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchdoc import cpu as benchdoc_cpu, write_section

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

ROOT = Path(__file__).resolve().parent.parent
AMSPLAY = ROOT / "target/release/amsplay"
AZURITE = ROOT / "node_modules/azurite/dist/src/blob/main.js"
OUT = ROOT / "bench/out"
PY = sys.executable
MB = 1024 * 1024


def key():
    return base64.b64encode(os.urandom(64)).decode()


class Azurite:
    def __init__(self, accounts):
        self.accounts = accounts
        self.data = tempfile.mkdtemp(prefix="azurite-data-", dir=OUT)
        self.log = tempfile.NamedTemporaryFile(prefix="azurite-", suffix=".log", delete=False)
        env = dict(os.environ, AZURITE_ACCOUNTS=";".join(f"{n}:{k}" for n, k in accounts.items()))
        self.proc = subprocess.Popen(
            ["node", str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", "0", "--silent",
             "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--location", self.data],
            stdout=self.log, stderr=self.log, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            m = re.search(r"listens on http://127\.0\.0\.1:(\d+)", Path(self.log.name).read_text())
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.05)
        raise RuntimeError("Azurite did not start: " + Path(self.log.name).read_text())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.data, ignore_errors=True)


class DelayProxy:
    """TCP proxy adding `delay` before forwarding each request (a burst of client bytes after
    the connection was quiet), as a cross-region round trip would. The Host header passes
    through untouched, so Azurite still recognises copies between its own accounts."""

    def __init__(self, upstream_port, delay=0.020):
        self.upstream_port, self.delay = upstream_port, delay
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, cr, cw):
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def up():
            last = 0.0
            while data := await cr.read(1 << 16):
                now = time.monotonic()
                if now - last > 0.002:
                    await asyncio.sleep(self.delay)
                last = time.monotonic()
                uw.write(data)
                await uw.drain()
            uw.close()

        async def down():
            while data := await ur.read(1 << 16):
                cw.write(data)
                await cw.drain()
            cw.close()

        await asyncio.gather(up(), down(), return_exceptions=True)


def conn(account, k, port):
    return (f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={k};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{account};")


def accounts_file(path, entries):
    """entries: dc -> (account, key, port)"""
    text = ""
    for dc, (account, k, port) in entries.items():
        kf = path.parent / f"{dc}.key"
        kf.write_text(k)
        text += (f'[accounts.{dc}]\nstorage_account = "{account}"\n'
                 f'blob_endpoint = "http://127.0.0.1:{port}/{account}"\nkey_file = "{kf}"\n\n')
    path.write_text(text)
    return path


def timed(cmd, env=None):
    """Runs a command; returns (seconds, peak RSS in MB, stdout)."""
    rss = tempfile.NamedTemporaryFile(delete=False)
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name] + cmd,
                       capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {p.stdout}\n{p.stderr}")
    peak = int(Path(rss.name).read_text().split()[-1]) / 1024
    return secs, peak, p.stdout


def make_sets():
    sets = {}
    enc = OUT / "data/encoded"
    if not enc.exists():
        enc.mkdir(parents=True)
        for mb, name in zip([150, 110, 90, 75, 60, 45, 40, 30],
                            ["1920x1080_6780", "1920x1080_5000", "1280x720_3520", "1280x720_2210",
                             "960x540_1150", "640x360_720", "480x270_380", "320x180_200"]):
            (enc / f"bbb_{name}.mp4").write_bytes(os.urandom(mb * MB))
        (enc / "bbb.ism").write_bytes(os.urandom(3000))
        (enc / "bbb.ismc").write_bytes(os.urandom(12000))
    sets["encoded"] = enc
    small = OUT / "data/small"
    if not small.exists():
        small.mkdir(parents=True)
        for i in range(2000):
            (small / f"seg{i:05}.m4s").write_bytes(os.urandom(64 * 1024))
    sets["small"] = small
    return sets


def set_stats(d):
    files = [f for f in d.iterdir() if f.is_file()]
    return len(files), sum(f.stat().st_size for f in files)


def drop(conn_str, container):
    try:
        BlobServiceClient.from_connection_string(conn_str).delete_container(container)
    except Exception:
        pass


def sas_urls(conn_str, container, perm):
    svc = BlobServiceClient.from_connection_string(conn_str)
    sas = generate_container_sas(svc.account_name, container, account_key=svc.credential.account_key,
                                 permission=perm,
                                 expiry=__import__("datetime").datetime.now(
                                     __import__("datetime").timezone.utc) + __import__("datetime").timedelta(days=1))
    return svc.get_container_client(container), sas


def sas_url(conn_str, container, perm, create=False):
    cc, sas = sas_urls(conn_str, container, perm)
    if create:
        cc.create_container()
    return f"{cc.url}?{sas}"


def raw_stream(src_conn, container, dst_conn, dst_container, files):
    """Every byte downloaded from A and uploaded to B at the same time: 16 pipelines of
    `curl GET | curl PUT` (single Put Blob, no hashing or verification by the client)."""
    src, ssas = sas_urls(src_conn, container, ContainerSasPermissions(read=True, list=True))
    dst, dsas = sas_urls(dst_conn, dst_container, ContainerSasPermissions(write=True, create=True))
    dst.create_container()
    lines = "\n".join(f"{src.get_blob_client(f.name).url}?{ssas} {dst.get_blob_client(f.name).url}?{dsas}"
                      for f in files)
    t0 = time.perf_counter()
    subprocess.run(["xargs", "-P", "16", "-n", "2", "sh", "-c",
                    'curl -sf "$0" | curl -sf -X PUT -H "x-ms-blob-type: BlockBlob" --data-binary @- "$1" -o /dev/null'],
                   input=lines, text=True, check=True)
    return time.perf_counter() - t0


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="amsplay-bench-"))
    sets = make_sets()
    rows_server, rows_stream = [], []
    env = dict(os.environ, AMSPLAY_NO_PROGRESS="1", RUST_LOG="warn")

    # ---------- server-side: one Azurite, two accounts ----------
    ka, kb = key(), key()
    az = Azurite({"dca": ka, "dcb": kb})
    proxy = DelayProxy(az.port)
    try:
        direct = accounts_file(work / "direct.toml", {"dc-a": ("dca", ka, az.port), "dc-b": ("dcb", kb, az.port)})
        delayed = accounts_file(work / "delayed.toml", {"dc-a": ("dca", ka, proxy.port), "dc-b": ("dcb", kb, proxy.port)})
        for name, d in sets.items():
            n, size = set_stats(d)
            timed([str(AMSPLAY), "--accounts", str(direct), "run", "bench/fill.rhai", "dc-a", str(d), name], env)
            for label, port, accounts in [("direct", az.port, direct), ("+20 ms", proxy.port, delayed)]:
                a, b = conn("dca", ka, port), conn("dcb", kb, port)
                cases = [
                    ("(a) walkthrough, Python SDK", [PY, "bench/walkthrough_copy.py", a, name, b, f"{name}-wt"], f"{name}-wt", b),
                    ("(c) amsplay copy_blobs", [str(AMSPLAY), "--accounts", str(accounts), "run", "bench/copy.rhai",
                                                "dc-a", name, "dc-b", f"{name}-cb", "server"], f"{name}-cb", b),
                    ("ceiling: 32 threads of Copy Blob", [PY, "bench/raw_server_copy.py", a, name, b, f"{name}-raw"], f"{name}-raw", b),
                ]
                for case, cmd, dst, dconn in cases:
                    secs, peak, _ = timed(cmd, env)
                    rows_server.append((name, n, size, label, case, secs, peak))
                    print(f"server {name:8} {label:7} {case:36} {secs:7.2f} s  {size / MB / secs:7.1f} MB/s  {n / secs:7.1f} blobs/s", flush=True)
                    drop(dconn, dst)
    finally:
        az.stop()

    # ---------- streamed: two Azurite processes ----------
    ka, kb = key(), key()
    aa, ab = Azurite({"dca": ka}), Azurite({"dcb": kb})
    try:
        accounts = accounts_file(work / "two.toml", {"dc-a": ("dca", ka, aa.port), "dc-b": ("dcb", kb, ab.port)})
        a, b = conn("dca", ka, aa.port), conn("dcb", kb, ab.port)
        for name, d in sets.items():
            n, size = set_stats(d)
            timed([str(AMSPLAY), "--accounts", str(accounts), "run", "bench/fill.rhai", "dc-a", str(d), name], env)
            cases = [
                ("(b) rclone copy", ["rclone", "copy", f"src:{name}", f"dst:{name}-r1"], f"{name}-r1"),
                ("(b) rclone copy --transfers 16", ["rclone", "copy", "--transfers", "16", f"src:{name}", f"dst:{name}-r16"], f"{name}-r16"),
                ("amsplay copy_blobs stream", [str(AMSPLAY), "--accounts", str(accounts), "run", "bench/copy.rhai",
                                               "dc-a", name, "dc-b", f"{name}-cb", "stream"], f"{name}-cb"),
            ]
            for case, cmd, dst in cases:
                # rclone 1.60 cannot take a path-style endpoint; container SAS URLs work.
                renv = dict(env, RCLONE_CONFIG_SRC_TYPE="azureblob", RCLONE_CONFIG_DST_TYPE="azureblob",
                            RCLONE_CONFIG_SRC_SAS_URL=sas_url(a, name, ContainerSasPermissions(read=True, list=True)),
                            RCLONE_CONFIG_DST_SAS_URL=sas_url(b, dst, ContainerSasPermissions(
                                read=True, write=True, list=True, create=True, add=True), create=True))
                secs, peak, _ = timed(cmd, renv)
                rows_stream.append((name, n, size, case, secs, peak))
                print(f"stream {name:8} {case:36} {secs:7.2f} s  {size / MB / secs:7.1f} MB/s  peak {peak:6.0f} MB", flush=True)
                drop(b, dst)
            secs = raw_stream(a, name, b, f"{name}-raw", sorted(d.iterdir()))
            rows_stream.append((name, n, size, "raw limit: 16 × curl GET piped to curl PUT", secs, None))
            print(f"stream {name:8} raw limit {secs:7.2f} s", flush=True)
            drop(b, f"{name}-raw")
    finally:
        aa.stop()
        ab.stop()
        shutil.rmtree(work, ignore_errors=True)

    (OUT / "replicate.json").write_text(__import__("json").dumps({"server": rows_server, "stream": rows_stream}))
    write_report(rows_server, rows_stream)


def write_report(rows_server, rows_stream):
    cpu = benchdoc_cpu()
    lines = ["## Replication (`bench/replicate`)", "",
             f"One run of each case, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores ({cpu}), "
             "Azurite 3.37 persisting to disk (as the local environment runs it), release build. Wall time of each whole command (process start, "
             "listing and verification included). Data sets: *encoded* = 8 MP4-sized files + .ism/.ismc "
             "(600 MiB), *small* = 2,000 blobs of 64 KiB. Azurite copies between its own accounts by reference, "
             "so server-side copies cost requests, not bytes. The raw limit starts two curl processes per "
             "blob: on the small set their start-up dominates and it is no limit there.", "",
             "### Server-side copy, both accounts in one Azurite", "",
             "| set | network | case | seconds | MB/s | blobs/s | vs (a) |", "|---|---|---|---:|---:|---:|---:|"]
    base = {}
    for name, n, size, label, case, secs, _ in rows_server:
        if case.startswith("(a)"):
            base[(name, label)] = secs
    for name, n, size, label, case, secs, _ in rows_server:
        ratio = base[(name, label)] / secs
        lines.append(f"| {name} | {label} | {case} | {secs:.2f} | {size / MB / secs:.1f} | {n / secs:.0f} | {ratio:.1f}× |")
    lines += ["", "### Streamed copy, two Azurite processes", "",
              "| set | case | seconds | MB/s | peak RSS MB |", "|---|---|---:|---:|---:|"]
    for name, n, size, case, secs, peak in rows_stream:
        lines.append(f"| {name} | {case} | {secs:.2f} | {size / MB / secs:.1f} | {'' if peak is None else f'{peak:.0f}'} |")
    lines += ["", "### Against the aims", ""]
    def srv(name, label, prefix):
        return next(r[5] for r in rows_server if r[0] == name and r[3] == label and r[4].startswith(prefix))
    a, c = srv("small", "+20 ms", "(a)"), srv("small", "+20 ms", "(c)")
    lines.append(f"- Server-side, many-small set, +20 ms per request: copy_blobs {a / c:.1f}× the walkthrough's way (aim ≥ 10×).")
    for name in ("encoded", "small"):
        ceil, cb = srv(name, "direct", "ceiling"), srv(name, "direct", "(c)")
        lines.append(f"- Server-side, {name} set, direct: copy_blobs (listing, copy, verify) takes {cb / ceil:.2f}× "
                     f"the time of the bare Copy Blob fire-hose (aim: within 1.10×).")
    for name in ("encoded", "small"):
        rs = [r for r in rows_stream if r[0] == name]
        best = min(r[4] for r in rs if r[3].startswith("(b)"))
        cb = next(r for r in rs if r[3].startswith("amsplay"))
        raw = next(r[4] for r in rs if r[3].startswith("raw"))
        lines.append(f"- Streamed, {name} set: copy_blobs {best / cb[4]:.2f}× as fast as rclone's best, "
                     f"{raw / cb[4]:.2f}× the raw limit's speed, peak RSS {cb[5]:.0f} MB (aim < 150 MB).")
    write_section("replicate", lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--report-only"]:
        saved = __import__("json").loads((OUT / "replicate.json").read_text())
        write_report([tuple(r) for r in saved["server"]], [tuple(r) for r in saved["stream"]])
    else:
        main()
