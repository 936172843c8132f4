#!/usr/bin/env python3
"""Load figures for the worker pool API, from a second process on loopback:
deploys per second (v2 create → operation done), and get/list latency under load (wrk).
Usage: api_load.py PATH/TO/runpool"""
import http.client, json, re, subprocess, sys, threading, time

from benchserver import serve

def main():
    binary = sys.argv[1]
    with serve(binary) as (url, host, port, token):
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        base = "/v2/projects/demo-project/locations/us-central1/workerPools"
        body = json.dumps({"template": {"containers": [{"image": "img", "command": ["/w"]}]},
                           "scaling": {"manualInstanceCount": 1}})

        def deploy(prefix, n):
            conn = http.client.HTTPConnection(host, int(port))
            for i in range(n):
                conn.request("POST", f"{base}?workerPoolId={prefix}-{i}", body, headers)
                r = conn.getresponse(); data = r.read()
                assert r.status == 200 and json.loads(data)["done"], data

        n = 300
        t0 = time.perf_counter(); deploy("seq", n); dt = time.perf_counter() - t0
        print(f"deploy (v2 create → operation done), 1 client: {n / dt:.0f}/s ({dt / n * 1000:.2f} ms each)")
        threads = [threading.Thread(target=deploy, args=(f"par{k}", n // 4)) for k in range(4)]
        t0 = time.perf_counter(); [t.start() for t in threads]; [t.join() for t in threads]; dt = time.perf_counter() - t0
        print(f"deploy, 4 clients: {n / dt:.0f}/s")

        for what, path in [("get", f"{base}/seq-0"), ("list (600 pools, first page of 100)", base)]:
            out = subprocess.run(["wrk", "-t2", "-c16", "-d8s", "--latency", "-H", f"Authorization: Bearer {token}",
                                  f"{url}{path}"], capture_output=True, text=True).stdout
            p50 = re.search(r"50%\s+(\S+)", out).group(1)
            p99 = re.search(r"99%\s+(\S+)", out).group(1)
            rps = re.search(r"Requests/sec:\s+(\S+)", out).group(1)
            print(f"{what} under load (wrk, 16 connections): p50 {p50}, p99 {p99}, {float(rps):.0f} req/s")

if __name__ == "__main__":
    main()
