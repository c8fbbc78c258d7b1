#!/usr/bin/env python3
"""A bidirectional gRPC test service on grpcio without protos (raw bytes): /test.Echo/Chat echoes
every message back; /test.Echo/Fail reads one message, then ends with PERMISSION_DENIED and a
grpc-message that needs percent-encoding. Checks the clusterid metadata on every call."""
import argparse
import time
from concurrent import futures

import grpc


def chat(request_iterator, context):
    md = dict(context.invocation_metadata())
    if md.get("clusterid") != "Kubernetes":
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "missing clusterid")
    for msg in request_iterator:
        yield msg


def fail(request_iterator, context):
    next(request_iterator, None)
    context.abort(grpc.StatusCode.PERMISSION_DENIED, "no stream for you: 100% sure")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="127.0.0.1:15020")
    args = p.parse_args()
    ident = (lambda b: b)
    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Chat": grpc.stream_stream_rpc_method_handler(chat, ident, ident),
        "Fail": grpc.stream_stream_rpc_method_handler(fail, ident, ident),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_receive_message_length", 64 << 20),
                                  ("grpc.max_send_message_length", 64 << 20)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(args.listen)
    server.start()
    print(f"listening {args.listen}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
