"""A gRPC server for the proxyless gRPC interop test: every unary call to
/trellis.test.Echo/* is answered with this server's version, as raw bytes
(generic handlers, so no protoc and no generated code).

Usage: echo_server.py ADDRESS VERSION. Prints "listening" once serving and
stops when its standard input closes, so it never outlives the test.
"""

import sys
from concurrent import futures

import grpc

SERVICE_PREFIX = "/trellis.test.Echo/"


class Echo(grpc.GenericRpcHandler):
    def __init__(self, version):
        self.reply = version.encode()

    def service(self, handler_call_details):
        if not handler_call_details.method.startswith(SERVICE_PREFIX):
            return None
        return grpc.unary_unary_rpc_method_handler(lambda _request, _context: self.reply)


def main():
    address, version = sys.argv[1], sys.argv[2]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((Echo(version),))
    if server.add_insecure_port(address) == 0:
        sys.exit(f"cannot listen on {address}")
    server.start()
    print("listening", flush=True)
    sys.stdin.read()
    server.stop(grace=None)


if __name__ == "__main__":
    main()
