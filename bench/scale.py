#!/usr/bin/env python3
"""Control plane at scale: N simulated sidecars (trellis-xds-load, half SotW
and half delta ADS, every response ACKed) against `trellis control-plane` on
a directory of M Services with K WorkloadEntries each. For each N, a fresh
control plane; then three changes, one after the other: a VirtualService
edited, an endpoint added, a service added. For each: p50/p99/max time from
the file write to the ACK of every affected proxy, bytes pushed, control
plane CPU seconds and peak RSS (/proc), and the load generator's CPU.

The full sync's line also gives the config each proxy received (KB per
proxy); with --sidecar-egress K a namespace Sidecar imports only K of the
services, which shows what scoping saves.

Usage: python3 bench/scale.py [--proxies 1000,5000,10000] [--services 1000]
       [--endpoints 10] [--sidecar-egress K] [--binary target/release/trellis]
       [--load target/release/trellis-xds-load] [--json results.json]
Build first: cargo build --release -p trellis -p trellis-xds-load
Everything listens on loopback; every wait is bounded in time.
"""
import argparse, json, os, resource, shutil, signal, socket, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
CLK_TCK = os.sysconf("SC_CLK_TCK")
XDS_PORT, SECURE_PORT, MONITORING_PORT = 25010, 25012, 25014
QUIET_MS = 2000          # a change has settled after this long without a push
CHANGE_DEADLINE_S = 300  # a change that takes longer is reported as is


def workload_ip(service, replica):
    # As trellis-xds-load's node_of: proxy i is replica i // M of svc-(i % M).
    return f"127.{101 + replica}.{service >> 8}.{service & 255}"


def service_yaml(name, cluster_ip):
    return (f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n"
            f"spec:\n  clusterIP: {cluster_ip}\n  selector: {{app: {name}}}\n"
            f"  ports: [{{name: http, port: 80, targetPort: 8080}}]\n")


def workload_yaml(name, app, address):
    return (f"apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
            f"metadata: {{name: {name}, namespace: default}}\n"
            f"spec: {{address: {address}, labels: {{app: {app}}}, ports: {{http: 8080}}}}\n")


def virtual_service_yaml(timeout_s):
    return ("apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            "metadata: {name: svc-0, namespace: default}\n"
            "spec:\n  hosts: [svc-0]\n  http:\n"
            f"  - timeout: {timeout_s}s\n    route: [{{destination: {{host: svc-0}}}}]\n")


def sidecar_yaml(imported):
    hosts = ", ".join(f'"./svc-{s}.default.svc.cluster.local"' for s in range(imported))
    return ("apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
            "metadata: {name: default, namespace: default}\n"
            f"spec:\n  egress:\n  - hosts: [{hosts}]\n")


def write_config(directory, services, endpoints, sidecar_egress=None):
    if sidecar_egress is not None:
        with open(os.path.join(directory, "sidecar.yaml"), "w") as out:
            out.write(sidecar_yaml(sidecar_egress))
    with open(os.path.join(directory, "services.yaml"), "w") as out:
        out.write("---\n".join(service_yaml(f"svc-{s}", f"10.96.{s >> 8}.{s & 255}")
                               for s in range(services)))
    with open(os.path.join(directory, "workloads.yaml"), "w") as out:
        out.write("---\n".join(workload_yaml(f"svc-{s}-{k}", f"svc-{s}", workload_ip(s, k))
                               for s in range(services) for k in range(endpoints)))
    with open(os.path.join(directory, "virtual-service.yaml"), "w") as out:
        out.write(virtual_service_yaml(5))


def replace_atomically(directory, name, text):
    temporary = os.path.join(directory, "." + name + ".tmp")
    with open(temporary, "w") as out:
        out.write(text)
    os.rename(temporary, os.path.join(directory, name))


def changes(services):
    """(kind, file, text): each applied to the config dir in turn."""
    return [
        ("VirtualService edited", "virtual-service.yaml", virtual_service_yaml(7)),
        ("endpoint added", "endpoint-added.yaml",
         workload_yaml("svc-1-extra", "svc-1", "127.255.0.1")),
        ("service added", "service-added.yaml",
         service_yaml("svc-new", "10.97.0.1") + "---\n"
         + workload_yaml("svc-new-0", "svc-new", "127.255.0.2")),
    ]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_for_port(port, process, deadline_s):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("the control plane exited during startup")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"nothing listens on {port} after {deadline_s}s")


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Load:
    """trellis-xds-load, driven over its stdin/stdout line protocol."""

    def __init__(self, binary, proxies, services):
        self.process = subprocess.Popen(
            [binary, "--xds", f"http://127.0.0.1:{XDS_PORT}", "--proxies", str(proxies),
             "--services", str(services)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, preexec_fn=raise_fd_limit)

    def ask(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            sys.exit(f"the load generator exited (after {command!r})")
        return json.loads(line)

    def stop(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def run_one(args, proxies):
    state = tempfile.mkdtemp(prefix="trellis-scale-")
    config = os.path.join(state, "config")
    os.mkdir(config)
    write_config(config, args.services, args.endpoints, args.sidecar_egress)
    cp = subprocess.Popen(
        [args.binary, "control-plane", "--config-dir", config, "--ca-dir", os.path.join(state, "ca"),
         "--xds-port", str(XDS_PORT), "--secure-port", str(SECURE_PORT),
         "--monitoring-port", str(MONITORING_PORT), "--dashboard-scrape-interval", "24h"]
        + args.cp_arg,
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(state, "cp.log"), "w"),
        preexec_fn=raise_fd_limit)
    load = None
    rows = []
    try:
        wait_for_port(XDS_PORT, cp, 120)
        started = time.monotonic()
        load = Load(args.load, proxies, args.services)
        ready = load.ask(f"wait-ready {args.ready_deadline}")
        print(f"N={proxies}: {ready['ready']}/{proxies} proxies synced in "
              f"{time.monotonic() - started:.1f}s; control plane {cpu_seconds(cp.pid):.1f} CPU s, "
              f"peak RSS {peak_rss_mb(cp.pid):.0f} MB; "
              f"{ready.get('bytes', 0) / max(ready['ready'], 1) / 1e3:.0f} KB per proxy", flush=True)
        for kind, name, text in changes(args.services):
            cp_cpu, load_cpu = cpu_seconds(cp.pid), cpu_seconds(load.process.pid)
            load.ask("mark")
            replace_atomically(config, name, text)
            report = load.ask(f"report {QUIET_MS} {CHANGE_DEADLINE_S}")
            window = report["window"]
            rows.append({
                "proxies": proxies, "change": kind, **window,
                "cpCpuSeconds": round(cpu_seconds(cp.pid) - cp_cpu, 2),
                "cpPeakRssMb": round(peak_rss_mb(cp.pid)),
                "loadCpuSeconds": round(cpu_seconds(load.process.pid) - load_cpu, 2),
            })
            print_row(rows[-1])
    finally:
        if load:
            load.stop()
        cp.send_signal(signal.SIGTERM)
        try:
            cp.wait(timeout=15)
        except subprocess.TimeoutExpired:
            cp.kill()
            cp.wait()
        shutil.rmtree(state, ignore_errors=True)
    return rows


HEADER = (f"{'N':>6} {'change':<22} {'affected':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'push ms':>8} {'MB pushed':>9} {'CP CPU s':>8} {'CP RSS MB':>9} {'load CPU s':>10}")


def print_row(r):
    print(f"{r['proxies']:>6} {r['change']:<22} {r['affected']:>8} {r['p50_ms']:>8.0f} "
          f"{r['p99_ms']:>8.0f} {r['max_ms']:>8.0f} {r['push_spread_ms']:>8.0f} "
          f"{r['bytes'] / 1e6:>9.1f} {r['cpCpuSeconds']:>8.2f} {r['cpPeakRssMb']:>9} "
          f"{r['loadCpuSeconds']:>10.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", default="1000,5000,10000")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--sidecar-egress", type=int,
                        help="a Sidecar in the services' namespace imports only this many of them")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "trellis"))
    parser.add_argument("--load", default=os.path.join(ROOT, "target", "release", "trellis-xds-load"))
    parser.add_argument("--ready-deadline", type=int, default=900,
                        help="seconds to wait for every proxy's first full sync")
    parser.add_argument("--cp-arg", action="append", default=[],
                        help="extra control-plane argument (repeatable)")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    rows = []
    print(HEADER, flush=True)
    for proxies in [int(n) for n in args.proxies.split(",")]:
        if proxies > args.services * args.endpoints:
            sys.exit(f"N={proxies} needs at least that many workloads (--services x --endpoints)")
        rows += run_one(args, proxies)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()
