#!/usr/bin/env python3
"""Config load + validate + analyze throughput: generates a mesh of N
resources (Services, Deployments, DestinationRules with subsets,
VirtualServices with weighted and header routes, in several namespaces),
runs `trellis analyze` on it R times, and prints the median wall time,
resources per second and peak RSS.

Usage: python3 bench/analyze.py [--resources 5000] [--runs 5] [--binary target/release/trellis]
"""
import argparse, os, resource, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))


def service_set(ns, i):
    name = f"svc-{i}"
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports:
  - {{name: http, port: 8080, targetPort: 8080}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}-v1, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {name}, version: v1}}}}
  template:
    metadata: {{labels: {{app: {name}, version: v1}}}}
    spec:
      containers:
      - {{name: app, image: example/{name}:1, ports: [{{containerPort: 8080}}]}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}}}
spec:
  host: {name}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{name}]
  http:
  - match:
    - headers: {{end-user: {{exact: jason}}}}
    route:
    - destination: {{host: {name}, subset: v1}}
  - route:
    - destination: {{host: {name}, subset: v1}}
      weight: 90
    - destination: {{host: svc-{(i + 1)}, port: {{number: 8080}}}}
      weight: 10
    timeout: 5s
---
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--binary", default=os.path.join(HERE, "..", "target", "release", "trellis"))
    args = parser.parse_args()
    per_set, namespaces = 4, 10
    sets = args.resources // per_set
    with tempfile.TemporaryDirectory(prefix="trellis-analyze-bench-") as work:
        for n in range(namespaces):
            ns = f"team-{n}"
            with open(os.path.join(work, f"{ns}.yaml"), "w") as out:
                for i in range(n * sets // namespaces, (n + 1) * sets // namespaces):
                    out.write(service_set(ns, i))
        total = sets * per_set
        walls, rss = [], []
        for _ in range(args.runs):
            started = time.monotonic()
            run = subprocess.run([args.binary, "analyze", "-A", "-f", work], capture_output=True, text=True)
            walls.append(time.monotonic() - started)
            if run.returncode not in (0, 79):
                sys.exit(f"analyze failed ({run.returncode}): {run.stderr[-2000:]}")
            rss.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        median = statistics.median(walls)
        print(f"{total} resources: median {median * 1000:.0f} ms over {args.runs} runs "
              f"({total / median:,.0f} resources/s), peak RSS {max(rss):.1f} MiB, "
              f"messages: {len(run.stdout.splitlines())} lines")


if __name__ == "__main__":
    main()
