"""BentoML's own cost of one image upload: a service that takes the same multipart upload and
does nothing with it. benchmarks/serve_overhead.py serves it beside the real one, so that the
served latency splits into BentoML's floor and what zoodeploy's endpoint adds above it."""

from __future__ import annotations

from pathlib import Path

import bentoml


@bentoml.service(name="bentoml-floor", workers=1, traffic={"timeout": 60})
class Floor:
    @bentoml.api
    async def classify(self, image: Path, top_k: int = 5) -> dict:
        """Accept the upload as /classify does (spooled to a file), answer a fixed small JSON."""
        return {"label": "floor", "bytes": image.stat().st_size, "top_k": top_k}
