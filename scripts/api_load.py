#!/usr/bin/env python3
"""Load figures for the worker pool API, from a second process on loopback:
deploys per second (v2 create → operation done), and get/list latency under load (wrk).
Usage: api_load.py PATH/TO/runpool"""
import http.client, json, os, re, subprocess, sys, tempfile, threading, time

def main():
    binary = sys.argv[1]
    cfg = tempfile.mkdtemp()
    env = dict(os.environ, RUNPOOL_CONFIG=cfg)
    srv = subprocess.Popen([binary, "serve", "--port", "0", "--ephemeral"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        url = srv.stdout.readline().strip().removeprefix("Listening on ")
        host, port = url.removeprefix("http://").split(":")
        record = json.load(open(os.path.join(cfg, "servers", f"{port}.json")))
        cred = open(record["adminCredentialFile"]).read().strip()
        c = http.client.HTTPConnection(host, int(port))
        c.request("POST", "/runpool/v1/tokens", json.dumps({"principal": "admin@example.com"}),
                  {"Authorization": f"Bearer {cred}", "Content-Type": "application/json"})
        token = json.loads(c.getresponse().read())["access_token"]
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
    finally:
        srv.terminate(); srv.wait(timeout=10)

if __name__ == "__main__":
    main()
