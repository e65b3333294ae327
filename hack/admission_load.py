#!/usr/bin/env python3
"""Memory under large reviews: posts N concurrent ConfigMap UPDATE reviews of about SIZE MiB
each to a running kreload and prints its RSS before, at the peak, and after.

Not a test (no threshold): a measurement for the README and issue notes. Loopback only.

    python3 hack/admission_load.py --pid PID --port 9443 --ca certs/ca.crt [-n 64] [--mib 19]
"""
import argparse
import http.client
import json
import ssl
import threading
import time


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def review(mib, uid):
    half = "a" * (mib * 1024 * 1024 // 2)
    obj = lambda v: {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "big", "namespace": "load"}, "data": {"k": v + half}}
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
                    "resource": {"group": "", "version": "v1", "resource": "configmaps"},
                    "name": "big", "namespace": "load", "operation": "UPDATE",
                    "userInfo": {"username": "load"}, "object": obj("new"), "oldObject": obj("old"),
                    "dryRun": False}}).encode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--port", type=int, default=9443)
    p.add_argument("--ca", required=True)
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--mib", type=int, default=19)
    a = p.parse_args()
    ctx = ssl.create_default_context(cafile=a.ca)
    body = review(a.mib, "load")
    statuses, lock = {}, threading.Lock()

    def post():
        try:
            c = http.client.HTTPSConnection("127.0.0.1", a.port, context=ctx, timeout=60)
            c.request("POST", "/validate/sources", body, {"Content-Type": "application/json"})
            status = c.getresponse().status
        except Exception as e:  # a reset or a timeout is an outcome to report too
            status = type(e).__name__
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    before = rss_mib(a.pid)
    peak, done = before, threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mib(a.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.time()
    threads = [threading.Thread(target=post) for _ in range(a.n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - started
    time.sleep(2)
    done.set()
    sampler.join()
    after = rss_mib(a.pid)
    time.sleep(10)
    later = rss_mib(a.pid)
    print(f"{a.n} reviews of {len(body) / 2**20:.1f} MiB in {took:.1f}s: {statuses}")
    print(f"RSS before {before:.0f} MiB, peak {peak:.0f} MiB, 2s after {after:.0f} MiB, "
          f"12s after {later:.0f} MiB")


if __name__ == "__main__":
    main()
