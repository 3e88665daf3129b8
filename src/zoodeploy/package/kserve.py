"""`package --format kserve`: the Triton repository plus Kubernetes manifests to run it.

    DIR/repository/<model>/...     the Triton model repository (`zoodeploy.package.triton`)
    DIR/inferenceservice.yaml      KServe InferenceService: Triton predictor, Open Inference Protocol v2
    DIR/bento-deployment.yaml      the other route: the BentoML service's image (`bentoml containerize`)
                                   as a plain Deployment + Service
    DIR/manifest.json              sha256 of the two manifests and of the repository's manifest

Upload `repository/` to object storage KServe can read and put its address into `storageUri`
(a placeholder until then); push the `bentoml containerize` image and put its name into the
Deployment. Both answer the same `/v2/models/<model>/infer`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoodeploy.artifact import Artifact
from zoodeploy.errors import ArtifactError
from zoodeploy.fileio import sha256_file, write_json, write_text
from zoodeploy.package.triton import Repository, RepositoryConfig, memory_gib, stage_repository, verify_repository
from zoodeploy.target import Target

ISVC, BENTO, MANIFEST, REPOSITORY = "inferenceservice.yaml", "bento-deployment.yaml", "manifest.json", "repository"
STORAGE_PLACEHOLDER = "s3://REPLACE-WITH-YOUR-BUCKET/zoodeploy/{model}"
IMAGE_PLACEHOLDER = "REPLACE-WITH-YOUR-REGISTRY/zoodeploy:{tag}"
BENTO_PORT = 3000
CPUS = "2"


@dataclass
class Deployment:
    path: Path  # DIR
    repository: Repository  # DIR/repository
    service_name: str  # the InferenceService's metadata.name
    manifest: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def k8s_name(name: str) -> str:
    """A DNS-1035 label (lowercase letters, digits, '-'; starts with a letter): mobilenet_v2 -> mobilenet-v2."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    slug = slug if slug[:1].isalpha() else f"m-{slug}"
    return slug[:45].rstrip("-")  # KServe derives longer names from it; 63 characters at most


def resources(target: Target, memory: int) -> dict[str, Any]:
    """Kubernetes resources of one server: CPUs and memory, and one NVIDIA GPU on the gpu target."""
    amount = {"cpu": CPUS, "memory": f"{memory}Gi"}
    limits = {**amount, "nvidia.com/gpu": "1"} if target is Target.gpu else dict(amount)
    return {"requests": amount, "limits": limits}


def inference_service(repo: Repository, target: Target) -> dict[str, Any]:
    """The KServe InferenceService: a Triton predictor that speaks the Open Inference Protocol."""
    m = repo.manifest
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": k8s_name(repo.model), "labels": {"app.kubernetes.io/part-of": "zoodeploy"},
                     "annotations": {"zoodeploy/model": repo.model, "zoodeploy/variant": repo.variant,
                                     "zoodeploy/variant-sha256": m["source"]["variant_sha256"],
                                     **({"zoodeploy/image-model": repo.image_model} if repo.image_model else {})}},
        "spec": {"predictor": {"model": {
            "modelFormat": {"name": "triton"},
            "protocolVersion": "v2",
            "storageUri": STORAGE_PLACEHOLDER.format(model=repo.model),
            "resources": resources(target, memory_gib(repo)),
        }}},
    }


def bento_deployment(repo: Repository, target: Target) -> list[dict[str, Any]]:
    """A Deployment + Service for the image `bentoml containerize` makes of the zoodeploy Bento."""
    name = k8s_name(repo.model) + "-bento"
    probe = {"initialDelaySeconds": 5, "periodSeconds": 5}
    container = {
        "name": "bento", "image": IMAGE_PLACEHOLDER.format(tag=repo.model.replace("_", "-")),
        "ports": [{"name": "http", "containerPort": BENTO_PORT}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": BENTO_PORT}, **probe},
        "livenessProbe": {"httpGet": {"path": "/livez", "port": BENTO_PORT}, **probe},
        "resources": resources(target, memory_gib(repo)),
    }
    labels = {"app": name, "app.kubernetes.io/part-of": "zoodeploy"}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
         "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": BENTO_PORT}]}},
    ]


def _yaml(header: str, docs: list[dict[str, Any]]) -> str:
    import yaml
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.safe_dump_all(docs, sort_keys=False)


def make_deployment(artifact: Artifact | str | Path, out: str | Path,
                    cfg: RepositoryConfig | None = None) -> Deployment:
    """Write the repository and both Kubernetes routes into the new or empty folder `out`."""
    artifact, out, cfg = Artifact.of(artifact), Path(out), cfg or RepositoryConfig()
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        raise ArtifactError(f"{out} exists and is not an empty folder; give a new folder for the deployment")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / REPOSITORY).mkdir()
        repo = stage_repository(artifact, staging / REPOSITORY, cfg)
        deployment = _stage_manifests(staging, repo)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    deployment.path, repo.path = out, out / REPOSITORY
    verify_repository(repo.path)
    return deployment


def _stage_manifests(root: Path, repo: Repository) -> Deployment:
    isvc = inference_service(repo, repo.target)
    storage = isvc["spec"]["predictor"]["model"]["storageUri"]
    write_text(root / ISVC, _yaml(
        f"KServe InferenceService for {repo.model} ({repo.variant}), made by `zoodeploy package --format kserve`.\n"
        f"Upload the repository/ folder next to this file to object storage, replace storageUri\n"
        f"({storage}) with its address, then: kubectl apply -f {ISVC}", [isvc]))
    write_text(root / BENTO, _yaml(
        "The BentoML route: bentoml build --arg model=TAG, then bentoml containerize zoodeploy:VERSION;\n"
        "push the image, replace the image name below, then: kubectl apply -f " + BENTO,
        bento_deployment(repo, repo.target)))
    manifest = {"format": "zoodeploy-kserve", "format_version": 1, "name": repo.model, "variant": repo.variant,
                "inference_service": k8s_name(repo.model), "storage_uri_placeholder": storage,
                "files": {name: {"sha256": sha256_file(root / name)} for name in (ISVC, BENTO)},
                "repository_manifest_sha256": sha256_file(root / REPOSITORY / repo.model / "manifest.json")}
    write_json(root / MANIFEST, manifest)
    notes = [*repo.notes, f"storageUri is a placeholder ({storage}): upload repository/ and set it"]
    return Deployment(root, repo, k8s_name(repo.model), manifest, notes)
