"""A tiny HTTP service instrumented with the OpenTelemetry Python SDK.

It joins the caller's trace through the W3C traceparent header and sends
its span to an OTLP/HTTP collector, the way any instrumented service would.
Usage: otel_service.py LISTEN_ADDR LISTEN_PORT COLLECTOR_URL
"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

addr, port, collector = sys.argv[1], int(sys.argv[2]), sys.argv[3]
provider = TracerProvider(resource=Resource.create({"service.name": "otel-demo"}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector + "/v1/traces")))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("otel-demo")


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        # Header names are case-insensitive: read them through the message.
        ctx = extract(self.headers)
        with tracer.start_as_current_span("GET /hello", context=ctx, kind=trace.SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", "GET")
            span.set_attribute("http.response.status_code", 200)
            body = b"hello from an instrumented service\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


print("listening", flush=True)
HTTPServer((addr, port), Hello).serve_forever()
