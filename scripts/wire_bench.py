#!/usr/bin/env python3
"""The new wires side by side, in one run against one release server on loopback:
GetWorkerPool over gRPC (h2c, transcoded) against REST over the same HTTP/2 client (h2load:
the same connections and load for both; p50/p99 from its per-request log), the proxy's TLS
handshake for a Google host name (CONNECT, then TLS 1.3 against the local CA), and deploys
(v2 create, operation done) direct against through the proxy over TLS.
Usage: wire_bench.py PATH/TO/runpool"""
import http.client, json, os, shutil, ssl, socket, statistics, subprocess, sys, tempfile, time

from benchserver import serve


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def h2load(url, token, seconds, extra):
    """Run h2load against url; (p50 ms, p99 ms, req/s, failed)."""
    with tempfile.NamedTemporaryFile("r", suffix=".log") as log:
        out = subprocess.run(
            ["h2load", "-c16", "-t2", "-m1", f"-D{seconds}", f"--log-file={log.name}",
             "-H", f"authorization: Bearer {token}", *extra, url],
            capture_output=True, text=True, check=True).stdout
        rows = [l.split("\t") for l in log.read().splitlines() if l.strip()]
    latencies = [int(r[2]) / 1000 for r in rows if r[1] == "200"]
    rps = float(out.split("finished in ")[1].split(", ")[1].split(" req/s")[0])
    failed = sum(1 for r in rows if r[1] != "200")
    return percentile(latencies, 0.5), percentile(latencies, 0.99), rps, failed


def grpc_frame(message: bytes) -> bytes:
    return b"\0" + len(message).to_bytes(4, "big") + message


def main():
    binary = sys.argv[1]
    for tool in ("h2load",):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed: apt-get install nghttp2-client")
    with serve(binary) as (url, host, port, token):
        c = http.client.HTTPConnection(host, port)
        c.request("GET", "/runpool/v1/ca")
        ca = json.loads(c.getresponse().read())["pem"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        parent = "projects/demo-project/locations/us-central1"
        body = json.dumps({"template": {"containers": [{"image": "img", "command": ["/w"]}]},
                           "scaling": {"manualInstanceCount": 0}})

        def deploy(conn, prefix, n):
            t0 = time.perf_counter()
            for i in range(n):
                conn.request("POST", f"/v2/{parent}/workerPools?workerPoolId={prefix}-{i}", body, headers)
                r = conn.getresponse(); data = r.read()
                assert r.status == 200 and json.loads(data)["done"], data
            return n / (time.perf_counter() - t0)

        tls = ssl.create_default_context(cadata=ca)
        direct = http.client.HTTPConnection(host, port)
        proxied = http.client.HTTPSConnection(host, port, context=tls)
        proxied.set_tunnel("run.googleapis.com", 443)
        rates = {"direct": [], "proxy": []}
        for round_ in range(3):  # interleaved, so drift hits both alike
            rates["direct"].append(deploy(direct, f"d{round_}", 100))
            rates["proxy"].append(deploy(proxied, f"p{round_}", 100))
        d, p = statistics.median(rates["direct"]), statistics.median(rates["proxy"])
        print(f"deploy, 1 client: direct (plain HTTP/1.1) {d:.0f}/s; through the proxy "
              f"(TLS to run.googleapis.com) {p:.0f}/s ({d / p:.2f}x)")

        handshakes = []
        for _ in range(300):
            s = socket.create_connection((host, port))
            s.sendall(b"CONNECT run.googleapis.com:443 HTTP/1.1\r\nHost: run.googleapis.com:443\r\n\r\n")
            reply = b""
            while b"\r\n\r\n" not in reply:
                reply += s.recv(4096)
            assert reply.startswith(b"HTTP/1.1 200"), reply
            t0 = time.perf_counter()
            t = tls.wrap_socket(s, server_hostname="run.googleapis.com")
            handshakes.append((time.perf_counter() - t0) * 1000)
            t.close()
        print(f"proxy TLS handshake (after CONNECT is answered): "
              f"p50 {percentile(handshakes, 0.5):.2f} ms, p99 {percentile(handshakes, 0.99):.2f} ms")

        name = f"{parent}/workerPools/d0-0"
        message = b"\x0a" + bytes([len(name)]) + name.encode()
        with tempfile.NamedTemporaryFile("wb", suffix=".bin", delete=False) as f:
            f.write(grpc_frame(message))
            grpc_body = f.name
        results = {"grpc": [], "rest": []}
        for _ in range(3):
            results["rest"].append(h2load(f"{url}/v2/{name}", token, 4, []))
            results["grpc"].append(h2load(
                f"{url}/google.cloud.run.v2.WorkerPools/GetWorkerPool", token, 4,
                ["-d", grpc_body, "-H", "content-type: application/grpc", "-H", "te: trailers"]))
        os.unlink(grpc_body)
        for wire in ("rest", "grpc"):
            runs = results[wire]
            assert all(r[3] == 0 for r in runs), (wire, runs)
            p50 = statistics.median(r[0] for r in runs)
            p99 = statistics.median(r[1] for r in runs)
            rps = statistics.median(r[2] for r in runs)
            label = {"rest": "REST (GET, JSON)", "grpc": "gRPC (protobuf)"}[wire]
            print(f"GetWorkerPool over HTTP/2 h2c, 16 connections, {label}: "
                  f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, {rps:.0f} req/s")
        ratio = statistics.median(r[2] for r in results["rest"]) / statistics.median(r[2] for r in results["grpc"])
        print(f"GetWorkerPool: REST req/s over gRPC req/s = {ratio:.2f}")


if __name__ == "__main__":
    main()
