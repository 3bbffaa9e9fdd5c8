"""An OTLP receiver for Seam's tests: decodes what Seam exports with the OpenTelemetry
project's own protobuf classes (opentelemetry-proto) and writes each request as one JSON line.

    otlp_receiver.py --protocol http|grpc --port-file F --out F [--fail-first N]

`--fail-first N` answers the first N requests with 503 (HTTP, with Retry-After: 0) or
UNAVAILABLE (gRPC), then accepts everything.
"""
import argparse
import json
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

LOCK = threading.Lock()


class State:
    def __init__(self, out, fail_first):
        self.out = out
        self.fail_left = fail_first
        self.requests = 0

    def should_fail(self):
        with LOCK:
            self.requests += 1
            if self.fail_left > 0:
                self.fail_left -= 1
                return True
            return False

    def record(self, signal, message):
        line = json.dumps({"signal": signal, "request": MessageToDict(message)})
        with LOCK:
            with open(self.out, "a", encoding="utf-8") as f:
                f.write(line + "\n")


def serve_http(state, port_file):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if state.should_fail():
                self.send_response(503)
                self.send_header("retry-after", "0")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            if self.headers.get("content-type") != "application/x-protobuf":
                self.send_response(415)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            if self.path == "/v1/traces":
                message, response = trace_service_pb2.ExportTraceServiceRequest(), trace_service_pb2.ExportTraceServiceResponse()
                signal = "traces"
            elif self.path == "/v1/logs":
                message, response = logs_service_pb2.ExportLogsServiceRequest(), logs_service_pb2.ExportLogsServiceResponse()
                signal = "logs"
            else:
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            message.ParseFromString(body)
            state.record(signal, message)
            payload = response.SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


def serve_grpc(state, port_file):
    import grpc

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            if state.should_fail():
                context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
            state.record("traces", request)
            return trace_service_pb2.ExportTraceServiceResponse()

    class Logs(logs_service_pb2_grpc.LogsServiceServicer):
        def Export(self, request, context):
            if state.should_fail():
                context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
            state.record("logs", request)
            return logs_service_pb2.ExportLogsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with open(port_file, "w", encoding="utf-8") as f:
        f.write(str(port))
    server.wait_for_termination()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["http", "grpc"], required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    args = parser.parse_args()
    state = State(args.out, args.fail_first)
    if args.protocol == "http":
        serve_http(state, args.port_file)
    else:
        serve_grpc(state, args.port_file)


if __name__ == "__main__":
    main()
