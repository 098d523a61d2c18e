#!/usr/bin/env python3
"""Config convergence: time from an atomic VirtualService replace in the
watched directory to the first request routed by the new rule, through the
whole mesh (config watch, debounce, translation, ADS push, proxy apply).

Usage: python3 bench/convergence.py [--binary target/release/trellis] [--switches 20]
Starts `trellis up` (bundled Bookinfo) on its own loopback range, switches
reviews between all-v3 and all-v1 N times, and prints the median and p90.
Traffic goes to loopback only; every loop is bounded in count and time.
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = os.path.join(HERE, "..", "samples", "bookinfo", "networking")
POLL_DEADLINE_S = 10.0


def reviews_version(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        tree = json.load(response)
    for call in tree.get("calls", []):
        if call.get("service") == "reviews":
            return call.get("version")
    return None


def replace_atomically(config_dir, name, source):
    temporary = os.path.join(config_dir, "." + name + ".tmp")
    shutil.copyfile(source, temporary)
    os.rename(temporary, os.path.join(config_dir, name))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=os.path.join(HERE, "..", "target", "release", "trellis"))
    parser.add_argument("--switches", type=int, default=20)
    parser.add_argument("--address-range", default="127.77.0.0/16")
    args = parser.parse_args()

    state = tempfile.mkdtemp(prefix="trellis-convergence-")
    up = subprocess.Popen(
        [args.binary, "up", "--state-dir", state, "--ca-dir", os.path.join(state, "ca"),
         "--address-range", args.address_range],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        urls = {}
        deadline = time.monotonic() + 120
        for line in up.stdout:
            if line.strip() == "ready":
                break
            if ": http" in line:
                name, url = line.strip().split(": ", 1)
                urls[name] = url
            if time.monotonic() > deadline:
                sys.exit("up did not become ready")
        config = json.load(open(os.path.join(state, "up.json")))["configDir"]
        url = urls["productpage"]
        targets = [("v3", "virtual-service-reviews-v3.yaml"), ("v1", "virtual-service-all-v1.yaml")]
        samples_ms = []
        for i in range(args.switches):
            want, source = targets[i % 2]
            started = time.monotonic()
            replace_atomically(config, "virtual-service-reviews-90-10.yaml", os.path.join(SAMPLES, source))
            while reviews_version(url) != want:
                if time.monotonic() - started > POLL_DEADLINE_S:
                    sys.exit(f"switch {i} to {want} did not converge in {POLL_DEADLINE_S}s")
            samples_ms.append((time.monotonic() - started) * 1000)
            time.sleep(0.2)
        samples_ms.sort()
        print(f"convergence over {len(samples_ms)} switches: median {statistics.median(samples_ms):.1f} ms, "
              f"p90 {samples_ms[int(len(samples_ms) * 0.9) - 1]:.1f} ms, min {samples_ms[0]:.1f} ms, "
              f"max {samples_ms[-1]:.1f} ms (includes the 50 ms config debounce)")
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=15)
        except subprocess.TimeoutExpired:
            up.kill()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
