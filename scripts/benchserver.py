"""The server the load scripts measure: `runpool serve --port 0 --ephemeral` with a config dir
of its own, and an access token for admin@example.com minted with its admin credential."""
import contextlib, http.client, json, os, subprocess, tempfile


@contextlib.contextmanager
def serve(binary, extra=()):
    """Yield (url, host, port, token); the server is stopped on the way out. `extra`: more
    `serve` flags (`--database URL`)."""
    cfg = tempfile.mkdtemp()
    env = dict(os.environ, RUNPOOL_CONFIG=cfg)
    srv = subprocess.Popen([binary, "serve", "--port", "0", "--ephemeral", *extra], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        url = srv.stdout.readline().strip().removeprefix("Listening on ")
        host, port = url.removeprefix("http://").split(":")
        port = int(port)
        record = json.load(open(os.path.join(cfg, "servers", f"{port}.json")))
        cred = open(record["adminCredentialFile"]).read().strip()
        c = http.client.HTTPConnection(host, port)
        c.request("POST", "/runpool/v1/tokens", json.dumps({"principal": "admin@example.com"}),
                  {"Authorization": f"Bearer {cred}", "Content-Type": "application/json"})
        yield url, host, port, json.loads(c.getresponse().read())["access_token"]
    finally:
        srv.terminate(); srv.wait(timeout=10)
