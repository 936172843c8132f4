#!/usr/bin/env python3
"""Figures for several servers over one PostgreSQL database, each measured from other
processes on loopback: reads per second with 1, 2 and 3 servers (wrk against each at once),
write latency on PostgreSQL against SQLite (v2 create → operation done, one client), the time
for a change made through one server to be read through another, and the runtime's failover
(the lease holder killed with SIGKILL → the pool's instance running under another server).
Usage: postgres_bench.py PATH/TO/runpool POSTGRES_URL (scripts/postgres prints one)"""
import contextlib, http.client, json, os, re, statistics, subprocess, sys, threading, time, uuid

from benchserver import serve

POOLS = "/v2/projects/demo-project/locations/us-central1/workerPools"


def new_database(base):
    name = "bench_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", base, "-qc", f"CREATE DATABASE {name}"], check=True)
    return base.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def servers(binary, n, database, runtime_args=()):
    with contextlib.ExitStack() as stack:
        extra = ["--database", database, *runtime_args] if database else list(runtime_args)
        yield [stack.enter_context(serve(binary, extra)) for _ in range(n)]


def call(host, port, token, method, path, body=None):
    c = http.client.HTTPConnection(host, port)
    c.request(method, path, json.dumps(body) if body is not None else None,
              {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def ms(x):
    return f"{x * 1000:.2f} ms"


def reads(binary, base):
    print("reads (GET a worker pool; wrk -t1 -c8 -d6s against each server at once):")
    for n in (1, 2, 3):
        with servers(binary, n, new_database(base)) as srv:
            url, host, port, token = srv[0]
            body = {"template": {"containers": [{"image": "img", "command": ["/w"]}]}}
            assert call(host, port, token, "POST", f"{POOLS}?workerPoolId=r", body)[0] == 200
            outs = [None] * n

            def load(i):
                u, _, _, t = srv[i]
                outs[i] = subprocess.run(
                    ["wrk", "-t1", "-c8", "-d6s", "--latency", "-H", f"Authorization: Bearer {t}",
                     f"{u}{POOLS}/r"], capture_output=True, text=True).stdout

            threads = [threading.Thread(target=load, args=(i,)) for i in range(n)]
            [t.start() for t in threads]; [t.join() for t in threads]
            rps = [float(re.search(r"Requests/sec:\s+(\S+)", o).group(1)) for o in outs]
            p50 = [re.search(r"^\s+50%\s+(\S+)", o, re.M).group(1) for o in outs]
            print(f"  {n} server{'s' if n > 1 else ''} over PostgreSQL: {sum(rps):.0f} req/s in all "
                  f"(each: {', '.join(f'{r:.0f}' for r in rps)}; p50 {', '.join(p50)})")
    with servers(binary, 1, None) as srv:
        url, host, port, token = srv[0]
        call(host, port, token, "POST", f"{POOLS}?workerPoolId=r",
             {"template": {"containers": [{"image": "img", "command": ["/w"]}]}})
        o = subprocess.run(["wrk", "-t1", "-c8", "-d6s", "--latency", "-H", f"Authorization: Bearer {token}",
                            f"{url}{POOLS}/r"], capture_output=True, text=True).stdout
        rps = float(re.search(r"Requests/sec:\s+(\S+)", o).group(1))
        p50 = re.search(r"50%\s+(\S+)", o).group(1)
        print(f"  1 server on SQLite: {rps:.0f} req/s (p50 {p50})")


def writes(binary, base, n=200):
    print(f"write latency (v2 create → operation done, one client, {n} pools):")
    for what, db in [("SQLite", None), ("PostgreSQL", new_database(base))]:
        with servers(binary, 1, db) as srv:
            _, host, port, token = srv[0]
            body = {"template": {"containers": [{"image": "img", "command": ["/w"]}]}}
            took = []
            for i in range(n):
                t0 = time.perf_counter()
                s, _ = call(host, port, token, "POST", f"{POOLS}?workerPoolId=w-{i}", body)
                took.append(time.perf_counter() - t0)
                assert s == 200
            print(f"  {what}: p50 {ms(pct(took, 0.5))}, p99 {ms(pct(took, 0.99))}")


def visibility(binary, base, n=200):
    with servers(binary, 2, new_database(base)) as srv:
        (_, h1, p1, t1), (_, h2, p2, t2) = srv
        seen = []
        for i in range(n):
            email = f"seen-{i}@demo-project.iam.gserviceaccount.com"
            s, _ = call(h1, p1, t1, "POST", "/v1/projects/demo-project/serviceAccounts", {"accountId": f"seen-{i}"})
            assert s == 200
            t0 = time.perf_counter()
            while call(h2, p2, t2, "GET", f"/v1/projects/demo-project/serviceAccounts/{email}")[0] != 200:
                pass
            seen.append(time.perf_counter() - t0)
        print(f"a change acknowledged by one server, read through another: p50 {ms(pct(seen, 0.5))}, "
              f"p99 {ms(pct(seen, 0.99))} (its first read sees it: each request catches up first)")


def procs_with(mark):
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if mark in open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace"):
                    out.append(int(pid))
            except OSError:
                pass
    return out


def parent(pid):
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])


def failover(binary, base, rounds=5):
    took = []
    for r in range(rounds):
        mark = f"failover-bench-{uuid.uuid4().hex[:8]}"
        db = new_database(base)
        procs = []
        try:
            for _ in range(2):
                cfg = f"/tmp/{mark}-{len(procs)}"
                os.makedirs(cfg)
                p = subprocess.Popen([binary, "serve", "--port", "0", "--ephemeral", "--database", db,
                                      "--instance-isolation", "none"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=dict(os.environ, RUNPOOL_CONFIG=cfg), text=True)
                url = p.stdout.readline().strip().removeprefix("Listening on ")
                procs.append((p, url, cfg))
            _, url, cfg = procs[0]
            port = int(url.rsplit(":", 1)[1])
            cred = open(json.load(open(f"{cfg}/servers/{port}.json"))["adminCredentialFile"]).read().strip()
            s, tok = call("127.0.0.1", port, cred, "POST", "/runpool/v1/tokens", {"principal": "admin@example.com"})
            token = json.loads(tok)["access_token"]
            body = {"template": {"containers": [{"image": "img", "command": ["sh", "-c", f"echo {mark}; while true; do sleep 0.1; done"]}]},
                    "scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 1}}
            assert call("127.0.0.1", port, token, "POST", f"{POOLS}?workerPoolId=f", body)[0] == 200
            while len(procs_with(mark)) != 1:
                time.sleep(0.01)
            holder = parent(procs_with(mark)[0])
            victim = next(p for p, _, _ in procs if p.pid == holder)
            t0 = time.perf_counter()
            victim.kill(); victim.wait()
            while True:
                now = procs_with(mark)
                if len(now) == 1 and parent(now[0]) != holder:
                    break
                time.sleep(0.005)
            took.append(time.perf_counter() - t0)
        finally:
            for p, _, _ in procs:
                p.kill(); p.wait()
            for pid in procs_with(mark):
                os.kill(pid, 9)
    print(f"runtime failover (lease holder killed -9 → the pool's instance running under another server, "
          f"{rounds} rounds): median {ms(statistics.median(took))}, max {ms(max(took))}")


def main():
    binary, base = sys.argv[1], sys.argv[2]
    reads(binary, base)
    writes(binary, base)
    visibility(binary, base)
    failover(binary, base)


if __name__ == "__main__":
    main()
