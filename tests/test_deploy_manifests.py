"""The deployment files in deploy/, checked offline: Kubernetes schemas (kubernetes-validate, strict)
and the Serve configs against rerankd's own flags. (The Dockerfiles are not built here.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is a test dependency")

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
K8S_VERSION = "1.33.0"


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def validate(resource: dict) -> None:
    kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def test_plain_manifests_are_valid_kubernetes_with_probes_cache_and_requests() -> None:
    resources = documents(DEPLOY / "k8s" / "rerankd.yaml")
    for resource in resources:
        validate(resource)
    kinds = {r["kind"]: r for r in resources}
    assert set(kinds) == {"PersistentVolumeClaim", "Deployment", "Service", "HorizontalPodAutoscaler"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert any(
        v["persistentVolumeClaim"]["claimName"] == "rerankd-models"
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    )
    drain = next(float(a.split("=")[1]) for a in container["args"] if a.startswith("--drain-timeout="))
    assert pod["terminationGracePeriodSeconds"] > drain + container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"]


def test_a_broken_manifest_is_refused() -> None:
    """The validator does refuse: a probe with a misspelled field fails strict validation."""
    deployment = next(r for r in documents(DEPLOY / "k8s" / "rerankd.yaml") if r["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/readyz"}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


def serve_config_flags(config: dict) -> list[str]:
    (application,) = config["applications"]
    assert application["import_path"] == "rerankd.ray:app"
    assert application["runtime_env"]["env_vars"]["RAY_USAGE_STATS_ENABLED"] == "0"
    names = {d["name"] for d in application["deployments"]}
    assert names == {"EngineReplica", "Gateway"}  # rerankd.ray.application's deployment names
    return application["args"]["flags"]


def test_rayservice_pods_are_valid_and_its_serve_config_parses_with_rerankd_flags(tmp_path: Path) -> None:
    from rerankd.cli import build_parser

    (service,) = documents(DEPLOY / "k8s" / "rayservice.yaml")
    assert service["apiVersion"] == "ray.io/v1" and service["kind"] == "RayService"
    cluster = service["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]
    for template in templates:
        validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template})
        for container in template["spec"]["containers"]:
            assert {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"} in container["env"]
    for config in (
        yaml.safe_load(service["spec"]["serveConfigV2"]),
        yaml.safe_load((DEPLOY / "ray" / "serve_config.yaml").read_text()),
    ):
        flags = serve_config_flags(config)
        # --model-root must exist where rerankd runs (a pod's /models); here, any directory does
        flags = [
            str(tmp_path) if previous == "--model-root" else flag
            for previous, flag in zip(["", *flags[:-1]], flags, strict=True)
        ]
        args = build_parser().parse_args(["serve", *flags])
        assert args.model
