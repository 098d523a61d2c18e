"""A proxyless gRPC client for the interop test: one channel to an xds:///
target (GRPC_XDS_BOOTSTRAP names the control plane), kept for the whole
run so configuration changes reach it live over xDS.

Usage: xds_client.py TARGET. Reads one JSON command per line on standard
input, {"calls": N, "metadata": {"name": "value"}}, makes N unary calls to
/trellis.test.Echo/Call and answers with one JSON line: the replies by
version and the failures by status code, with the last failure's details.
Stops when its standard input closes.
"""

import json
import sys

import grpc

METHOD = "/trellis.test.Echo/Call"
CALL_TIMEOUT_SECONDS = 5


def run_batch(call, command):
    metadata = tuple((k, v) for k, v in command.get("metadata", {}).items())
    replies, errors, last_error = {}, {}, None
    for _ in range(int(command["calls"])):
        try:
            reply = call(
                b"ping",
                metadata=metadata,
                timeout=CALL_TIMEOUT_SECONDS,
                wait_for_ready=True,
            ).decode()
            replies[reply] = replies.get(reply, 0) + 1
        except grpc.RpcError as error:
            code = error.code().name
            errors[code] = errors.get(code, 0) + 1
            last_error = f"{code}: {error.details()}"
    return {"replies": replies, "errors": errors, "last_error": last_error}


def main():
    channel = grpc.insecure_channel(sys.argv[1])
    call = channel.unary_unary(METHOD)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(run_batch(call, json.loads(line))), flush=True)
    channel.close()


if __name__ == "__main__":
    main()
