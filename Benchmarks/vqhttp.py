"""HTTP helpers the benchmark scripts share (standard library only)."""
import http.client
import json
import time


def call(port, method, path, body=None, timeout=3600):
    """One JSON request to 127.0.0.1:PORT; returns (status, parsed JSON or the raw bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data[:1] in (b"{", b"[") else data


def wait_until(pred, seconds=600, step=0.05):
    """Polls `pred` until it is true (connection errors count as not yet); False after `seconds`."""
    end = time.time() + seconds
    while time.time() < end:
        try:
            if pred():
                return True
        except OSError:
            pass
        time.sleep(step)
    return False
