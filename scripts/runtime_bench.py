#!/usr/bin/env python3
"""Runtime figures for `runpool serve` (process runtime), from a second process:

1. deploy → first instance running with a token: from the v2 create call until the instance
   has fetched an access token from its own metadata server (the instance writes the token
   into a FIFO this script reads; EOF is the moment), median and p90 of RUNS deploys;
2. metadata server token requests: an instance writes its GCE_METADATA_HOST to a file, then
   wrk loads `.../service-accounts/default/token` on it (Metadata-Flavor: Google), p50/p99;
3. 100 instances of an idle process: time until the pool's Ready condition reports them all
   running, then the server's own CPU% (utime+stime from /proc/PID/stat over a window) and
   resident memory (VmRSS) while they run.

Usage: runtime_bench.py PATH/TO/runpool [RUNS]    (needs curl and wrk)"""
import http.client, json, os, re, shutil, statistics, subprocess, sys, tempfile, threading, time

PROJECT = "demo-project"
BASE = f"/v2/projects/{PROJECT}/locations/us-central1/workerPools"


class Server:
    def __init__(self, binary):
        self.cfg = tempfile.mkdtemp()
        env = dict(os.environ, RUNPOOL_CONFIG=self.cfg)
        self.proc = subprocess.Popen([binary, "serve", "--port", "0", "--ephemeral"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        self.url = self.proc.stdout.readline().strip().removeprefix("Listening on ")
        host, port = self.url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        record = json.load(open(os.path.join(self.cfg, "servers", f"{port}.json")))
        cred = open(record["adminCredentialFile"]).read().strip()
        self.conn = http.client.HTTPConnection(host, self.port)
        status, body = self.call("POST", "/runpool/v1/tokens", {"principal": "admin@example.com"}, cred)
        assert status == 200, body
        self.token = body["access_token"]

    def call(self, method, path, body=None, token=None):
        headers = {"Authorization": f"Bearer {token or self.token}", "Content-Type": "application/json"}
        self.conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        r = self.conn.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data else None

    def deploy(self, pool_id, script, count=1):
        body = {"template": {"containers": [{"image": "img", "command": ["sh", "-c", script]}]},
                "scaling": {"scalingMode": "MANUAL", "manualInstanceCount": count}}
        status, op = self.call("POST", f"{BASE}?workerPoolId={pool_id}", body)
        assert status == 200 and op.get("done"), op

    def delete(self, pool_id):
        status, op = self.call("DELETE", f"{BASE}/{pool_id}")
        assert status == 200, op

    def cpu_ticks(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)

    def rss_mib(self):
        line = next(l for l in open(f"/proc/{self.proc.pid}/status") if l.startswith("VmRSS"))
        return int(line.split()[1]) / 1024

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def deploy_to_token(srv, runs, tmp):
    """v2 create → the instance holds an access token from its metadata server."""
    times = []
    for i in range(runs):
        fifo = os.path.join(tmp, f"token-{i}")
        os.mkfifo(fifo, 0o666)
        os.chmod(fifo, 0o666)
        script = ("curl -s -H 'Metadata-Flavor: Google' "
                  "\"http://$GCE_METADATA_HOST/computeMetadata/v1/instance/service-accounts/default/token\" "
                  f"> {fifo}; exec sleep 3600")
        got = {}

        def read():
            with open(fifo) as f:  # blocks until the instance opens it; EOF once curl is done
                got["body"] = f.read()
            got["t"] = time.perf_counter()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        t0 = time.perf_counter()
        srv.deploy(f"tok-{i}", script)
        reader.join(timeout=30)
        assert "t" in got, "the instance never wrote its token"
        assert "access_token" in got["body"], got["body"]
        times.append((got["t"] - t0) * 1000)
        srv.delete(f"tok-{i}")
    print(f"deploy → first instance running with a token (process runtime, {runs} deploys): "
          f"median {statistics.median(times):.1f} ms, p90 {pct(times, 90):.1f} ms "
          f"(min {min(times):.1f}, max {max(times):.1f})")


def wait_file(path, secs=30):
    deadline = time.time() + secs
    while time.time() < deadline:
        if os.path.exists(path) and open(path).read().strip():
            return open(path).read().strip()
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {path}")


def metadata_load(srv, tmp):
    """wrk on one instance's metadata server: the token path, Metadata-Flavor: Google."""
    where = os.path.join(tmp, "md-host")
    srv.deploy("md", f"echo \"$GCE_METADATA_HOST\" > {where}.part && mv {where}.part {where}; exec sleep 3600")
    host = wait_file(where)
    url = f"http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
    # A metadata server answers only its instance's user (a user of its own under a root
    # server): wrk runs as that user, the owner of the file the instance wrote.
    uid = os.stat(where).st_uid
    as_instance = [] if uid == os.geteuid() else [
        "setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups", "--"]
    for conns in (1, 16):
        out = subprocess.run(as_instance + ["wrk", f"-t{min(conns, 2)}", f"-c{conns}", "-d8s", "--latency",
                              "-H", "Metadata-Flavor: Google", url], capture_output=True, text=True).stdout
        p50 = re.search(r"50%\s+(\S+)", out).group(1)
        p99 = re.search(r"99%\s+(\S+)", out).group(1)
        rps = float(re.search(r"Requests/sec:\s+(\S+)", out).group(1))
        assert "Non-2xx" not in out, out
        print(f"metadata token request (wrk, {conns} connection{'s' if conns > 1 else ''}): "
              f"p50 {p50}, p99 {p99}, {rps:,.0f} req/s")
    srv.delete("md")


def hundred_instances(srv):
    """100 instances of an idle process: the server's own CPU and memory while they run."""
    idle_rss = srv.rss_mib()
    t0 = time.perf_counter()
    srv.deploy("hundred", "exec sleep 3600", count=100)
    deadline = time.time() + 120
    while True:
        _, pool = srv.call("GET", f"{BASE}/hundred")
        msg = (pool.get("terminalCondition") or {}).get("message", "")
        if msg == "100 instances running.":
            break
        if time.time() > deadline:
            raise SystemExit(f"100 instances not running after 120 s: {msg!r}")
        time.sleep(0.02)
    up = time.perf_counter() - t0
    time.sleep(2)  # settle: the start-up burst is over
    hz = os.sysconf("SC_CLK_TCK")
    window = 20
    c0, w0 = srv.cpu_ticks(), time.perf_counter()
    time.sleep(window)
    c1, w1 = srv.cpu_ticks(), time.perf_counter()
    cpu = (c1 - c0) / hz / (w1 - w0) * 100
    print(f"100 idle instances: all running {up * 1000:.0f} ms after the deploy; server while they run: "
          f"{cpu:.2f}% of one core (over {window} s), RSS {srv.rss_mib():.1f} MiB "
          f"(before the deploy: {idle_rss:.1f} MiB)")
    srv.delete("hundred")


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    for tool in ("curl", "wrk"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed for the runtime figures: apt-get install {tool}")
    tmp = tempfile.mkdtemp()
    # The instances write here: under a root server each runs as a user of its own.
    os.chmod(tmp, 0o777)
    srv = Server(binary)
    try:
        deploy_to_token(srv, runs, tmp)
        metadata_load(srv, tmp)
        hundred_instances(srv)
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(srv.cfg, ignore_errors=True)


if __name__ == "__main__":
    main()
