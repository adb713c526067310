"""Emulator throughput (see bench/emulator): wrk against `amsplay serve` over Azurite, both on
loopback in one run. Writes the "Media Services emulator" section of docs/bench.md."""
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from benchdoc import cpu as benchdoc_cpu, write_section

sys.path.insert(0, str(Path(__file__).parent))
import replicate as R  # noqa: E402  (Azurite helper, account keys)

ROOT = R.ROOT


def wrk(args, env=None):
    out = subprocess.run(["wrk", "--latency"] + args, capture_output=True, text=True, env=env, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: m for p, m in re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat.get("50"), lat.get("99"), int(non2xx.group(1)) if non2xx else 0, out


def main():
    key = R.key()
    az = R.Azurite({"dca": key})
    data = Path(R.tempfile.mkdtemp(prefix="ams-bench-"))
    ams_key = R.key()
    env = dict(os.environ, AMSPLAY_MEDIA_KEY=ams_key, AMSPLAY_BENCH_STORAGE=R.conn("dca", key, az.port), RUST_LOG="warn")
    env.pop("AMSPLAY_ACCOUNTS", None)
    serve = subprocess.Popen([str(R.AMSPLAY), "serve", "--account", "amsbench", "--storage", "AMSPLAY_BENCH_STORAGE",
                              "--listen", "127.0.0.1:0", "--data-dir", str(data)], stdout=subprocess.PIPE, text=True, env=env)
    base = serve.stdout.readline().strip().split()[-1]
    try:
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "amsbench",
                                       "client_secret": ams_key, "scope": "urn:WindowsAzureMediaServices"}).encode()
        token = json.load(urllib.request.urlopen(f"{base}/v2/OAuth2-13", form))["access_token"]

        def api(method, path, body=None):
            req = urllib.request.Request(f"{base}/api/{path}", method=method, data=body and json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                                  "Content-Type": "application/json"})
            return json.load(urllib.request.urlopen(req))

        asset = api("POST", "Assets", {"Name": "bench"})["Id"]
        policy = api("POST", "AccessPolicies", {"Name": "r", "DurationInMinutes": 60, "Permissions": 1})["Id"]
        for i in range(50):
            api("POST", "Assets", {"Name": f"filler {i}"})
        enc = asset.replace(":", "%3A")
        hdr = ["-H", f"Authorization: Bearer {token}", "-H", "Accept: application/json", "-H", "x-ms-version: 2.19"]
        rows = []
        for conns in (16, 64):
            rps, p50, p99, bad, _ = wrk(["-t1", f"-c{conns}", "-d10s"] + hdr + [f"{base}/api/Assets('{enc}')"])
            rows.append((f"GET Assets('id'), {conns} connections", rps, p50, p99, bad))
            print(rows[-1], flush=True)
        lenv = dict(os.environ, TOKEN=token, ASSET=asset, POLICY=policy)
        rps, p50, p99, bad, _ = wrk(["-t1", "-c4", "-d10s", "-s", "bench/locators.lua", base], lenv)
        rows.append(("POST Locators then DELETE it, 4 connections", rps, p50, p99, bad))
        print(rows[-1], flush=True)
    finally:
        serve.terminate()
        serve.wait(10)
        az.stop()
    write(rows)


def write(rows):
    cpu = benchdoc_cpu()
    lines = ["## Media Services emulator (`bench/emulator`)", "",
             f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores ({cpu}); release build; wrk (1 thread) and the emulator "
             "share the machine, 10 s per case, over Azurite holding the storage account. An asset holds at most five "
             "locators, so the locator case deletes each locator it creates (both requests are counted).", "",
             "| case | requests/s | p50 | p99 | non-2xx |", "|---|---:|---:|---:|---:|"]
    for case, rps, p50, p99, bad in rows:
        lines.append(f"| {case} | {rps:,.0f} | {p50} | {p99} | {bad} |")
    write_section("emulator", lines)


if __name__ == "__main__":
    main()
