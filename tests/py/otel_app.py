"""A real application for Seam's tests: the OpenTelemetry Python SDK with its OTLP exporter.

    otel_app.py --protocol http|grpc --endpoint URL --service NAME [--tenant T]
                --connect HOST:PORT [--calls N] [--ca PEM] [--token T] [--attribute K=V]...

Within a CLIENT span (server.address, server.port set, as instrumentation libraries do) it
opens a TCP connection to HOST:PORT, writes a line and closes; `--tenant` sets the declared
tenant (`tenant.id`) on the resource; `--attribute` adds attributes to the CLIENT span. With
`--ca` the endpoint is https (trusting that certificate); `--token` sends `Authorization: Bearer`.
Spans are exported when the app ends (force_flush).
"""
import argparse
import os
import socket
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def exporter(protocol, endpoint, ca=None, token=None):
    headers = {"authorization": f"Bearer {token}"} if token else None
    if ca:
        # requests lets REQUESTS_CA_BUNDLE (set on many hosts) override a session's own CA
        # file, so the exporter's certificate_file alone would be ignored.
        os.environ["REQUESTS_CA_BUNDLE"] = ca
        os.environ.pop("CURL_CA_BUNDLE", None)
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(
            endpoint=endpoint.rstrip("/") + "/v1/traces", certificate_file=ca, headers=headers
        )
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    if ca:
        import grpc

        with open(ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        return OTLPSpanExporter(endpoint=endpoint, credentials=credentials, headers=headers)
    return OTLPSpanExporter(endpoint=endpoint, insecure=True, headers=headers)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["http", "grpc"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--tenant")
    parser.add_argument("--connect", required=True)
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--ca")
    parser.add_argument("--token")
    parser.add_argument("--attribute", action="append", default=[])
    args = parser.parse_args()

    attributes = {"service.name": args.service}
    if args.tenant:
        attributes["tenant.id"] = args.tenant
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(
        BatchSpanProcessor(exporter(args.protocol, args.endpoint, args.ca, args.token))
    )
    tracer = provider.get_tracer("seam-test-app")

    host, port = args.connect.rsplit(":", 1)
    with tracer.start_as_current_span("handle request", kind=trace.SpanKind.SERVER):
        for _ in range(args.calls):
            with tracer.start_as_current_span(
                "SELECT orders",
                kind=trace.SpanKind.CLIENT,
                attributes={
                    "server.address": host,
                    "server.port": int(port),
                    "db.system": "postgresql",
                    **dict(a.split("=", 1) for a in args.attribute),
                },
            ):
                with socket.create_connection((host, int(port)), timeout=10) as conn:
                    conn.sendall(b"query\n")
    if not provider.force_flush(timeout_millis=10000):
        print("export did not finish", file=sys.stderr)
        sys.exit(1)
    provider.shutdown()


if __name__ == "__main__":
    main()
