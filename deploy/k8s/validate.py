#!/usr/bin/env python3
"""Renders every overlay under deploy/k8s/overlays with `kubectl kustomize` and validates each
rendered object offline against the Kubernetes JSON schemas (PyPI `kubernetes-validate`,
strict: unknown fields are errors), for the oldest Kubernetes version the manifests support
and the newest the package knows. A kind without a schema is an error (a typo in `kind` must
not pass), except the custom resources in CUSTOM_KINDS, whose required fields are checked
here. Exits 1 on any error.

Usage: deploy/k8s/validate.py [OVERLAY_DIR ...]   (default: every overlay)
"""

import pathlib
import subprocess
import sys

import kubernetes_validate
import yaml

HERE = pathlib.Path(__file__).resolve().parent
# Oldest Kubernetes the manifests are written for (StatefulSet PVC retention is GA in 1.32).
MIN_VERSION = "1.32"
# Custom resources without a schema in kubernetes-validate: (apiVersion, kind) -> the paths
# that must be present.
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): [
        ("spec", "selector"),
        ("spec", "endpoints"),
    ],
}


def render(overlay: pathlib.Path) -> list:
    out = subprocess.run(
        ["kubectl", "kustomize", str(overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc is not None]


def check_custom(obj: dict, required: list) -> list:
    errors = []
    for path in required:
        node = obj
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if not node:
            errors.append("missing " + ".".join(path))
    return errors


def validate(obj: dict, versions: list) -> list:
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CUSTOM_KINDS:
        return check_custom(obj, CUSTOM_KINDS[key])
    errors = []
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{version}: {'.'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{version}: no schema for kind {key[1]} of {key[0]}")
    return errors


def main(args: list) -> int:
    overlays = [pathlib.Path(a) for a in args] or sorted(
        p for p in (HERE / "overlays").iterdir() if (p / "kustomization.yaml").exists()
    )
    versions = [MIN_VERSION, kubernetes_validate.latest_version()]
    failed = 0
    for overlay in overlays:
        try:
            objects = render(overlay)
        except subprocess.CalledProcessError as e:
            print(f"FAIL {overlay}: kubectl kustomize failed:\n{e.stderr}")
            failed += 1
            continue
        if not objects:
            print(f"FAIL {overlay}: rendered nothing")
            failed += 1
            continue
        for obj in objects:
            name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            errors = validate(obj, versions)
            failed += bool(errors)
            for error in errors:
                print(f"FAIL {overlay.name}: {name}: {error}")
        print(f"{overlay.name}: {len(objects)} objects rendered and checked "
              f"(Kubernetes {', '.join(versions)})")
    if failed:
        print(f"{failed} failure(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
