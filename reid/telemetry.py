"""Prometheus metrics of the engine and service, on a registry of their own (one per app instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """All series exported at ``/metrics``. The batcher records queue/inference/batch figures; the web
    layer records request latency."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.request_latency = Histogram(
            "reid_request_latency_seconds",
            "HTTP request latency",
            ["route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "reid_queue_time_seconds",
            "Time a request waited for a batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_time = Histogram(
            "reid_inference_time_seconds", "Model time per batch", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "reid_batch_size", "Images per model batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("reid_queue_depth", "Images waiting for the model", registry=r)
        self.images_embedded = Counter("reid_images_embedded", "Images embedded", registry=r)
        self.rejected = Counter(
            "reid_queue_rejections", "Requests refused because the queue was full", registry=r
        )
        # With GPU decoding, how many JPEGs really reach the GPU, and how many nvJPEG refused.
        self.decoded_images = Counter(
            "reid_decoded_images",
            "Images decoded for the model, by decoder (pillow, device, pillow_fallback)",
            ["decoder"],
            registry=r,
        )

    def count_decoded(self, decoder: str, images: int) -> None:
        self.decoded_images.labels(decoder=decoder).inc(images)
