#!/usr/bin/env python3
"""Measure `runpool serve`: time from process start to the first answered HTTP request, and
resident memory once idle. Usage: startup.py PATH/TO/runpool [RUNS]"""
import os, statistics, subprocess, sys, tempfile, time, urllib.request, urllib.error

def once(binary):
    with tempfile.TemporaryDirectory() as cfg:
        env = dict(os.environ, RUNPOOL_CONFIG=cfg)
        t0 = time.perf_counter()
        p = subprocess.Popen([binary, "serve", "--port", "0", "--ephemeral"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        line = p.stdout.readline()
        url = line.strip().removeprefix("Listening on ")
        try:
            urllib.request.urlopen(url + "/v3/projects/demo-project", timeout=5)
        except urllib.error.HTTPError as e:
            assert e.code == 401, e.code  # answered: no token
        elapsed = time.perf_counter() - t0
        time.sleep(1.0)
        rss_kb = int(next(l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS")).split()[1])
        p.terminate()
        p.wait(timeout=10)
        return elapsed, rss_kb

def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    results = [once(binary) for _ in range(runs)]
    starts = sorted(r[0] * 1000 for r in results)
    rss = sorted(r[1] / 1024 for r in results)
    print(f"serve start → first answered request: median {statistics.median(starts):.1f} ms "
          f"(min {starts[0]:.1f}, max {starts[-1]:.1f}, {runs} runs)")
    print(f"idle resident memory: median {statistics.median(rss):.1f} MiB")

if __name__ == "__main__":
    main()
