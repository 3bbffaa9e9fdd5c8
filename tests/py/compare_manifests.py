"""Checks that `helm template` renders the same objects as the plain manifests.

Usage: compare_manifests.py RENDERED.yaml PLAIN.yaml...

Objects are matched by (kind, namespace, name). The plain Namespace has no counterpart (the
chart installs into --namespace) and the chart's `checksum/*` pod annotations (restart on a
config change) are ignored. Prints every difference; exit 1 if any.
"""
import sys

import yaml


def load(paths):
    objects = {}
    for path in paths:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc:
                    continue
                meta = doc.get("metadata", {})
                key = (doc["kind"], meta.get("namespace"), meta["name"])
                objects[key] = doc
    return objects


def strip(doc):
    template = doc.get("spec", {}).get("template", {}).get("metadata", {})
    annotations = template.get("annotations", {})
    for key in [k for k in annotations if k.startswith("checksum/")]:
        del annotations[key]
    if "annotations" in template and not annotations:
        del template["annotations"]
    return doc


def diff(a, b, path=""):
    if type(a) is not type(b):
        return [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{path}.{k}: only in {'chart' if k in a else 'plain'}")
            else:
                out += diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def main():
    rendered = load(sys.argv[1:2])
    plain = load(sys.argv[2:])
    problems = []
    for key, doc in plain.items():
        if key[0] == "Namespace":
            continue
        if key not in rendered:
            problems.append(f"{key}: not rendered by the chart")
            continue
        problems += [f"{key}{d}" for d in diff(strip(rendered[key]), strip(doc))]
    for key in rendered:
        if key not in plain:
            problems.append(f"{key}: rendered but not in the plain manifests")
    for p in problems:
        print(p)
    print(f"{len(plain)} plain objects, {len(rendered)} rendered, {len(problems)} differences")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
