#!/usr/bin/env bash
# Checks deploy/kubernetes offline: every manifest against the Kubernetes schemas (kubernetes-validate, which
# bundles them), the kustomization's resources exist, and the ConfigMap's rollcall.toml and accounts.toml
# load with `rollcall check --offline` (dummy files stand in for the Secret's). Uses kubernetes-validate and
# PyYAML (its dependency); .ci/run installs them, and each missing one is said and skipped, not failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=deploy/kubernetes
binary="$(pwd)/target/debug/rollcall"
[ -x "$binary" ] || cargo build --quiet --bin rollcall
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "$dir not verified: PyYAML is not installed (pip install kubernetes-validate brings it)"
  exit 0
fi

# The kustomization is not a Kubernetes resource (no schema): check only that it lists files that exist,
# and that every manifest here is listed, so a new file cannot silently stay out of `kubectl apply -k`.
python3 - "$dir" <<'PY'
import os, sys, yaml
d = sys.argv[1]
with open(os.path.join(d, "kustomization.yaml")) as f:
    resources = yaml.safe_load(f)["resources"]
missing = [r for r in resources if not os.path.exists(os.path.join(d, r))]
unlisted = sorted(f for f in os.listdir(d)
                  if f.endswith(".yaml") and f != "kustomization.yaml" and f not in resources)
if missing or unlisted:
    sys.exit(f"{d}/kustomization.yaml: missing files {missing}, manifests not listed {unlisted}")
PY
manifests=$(python3 -c 'import sys, yaml; print("\n".join(yaml.safe_load(open(sys.argv[1]))["resources"]))' \
  "$dir/kustomization.yaml" | sed "s|^|$dir/|")
if command -v kubernetes-validate >/dev/null 2>&1; then
  # --strict: an unknown field (a typo such as readOnlyRootFilesytem) is an error, not silently ignored.
  # shellcheck disable=SC2086
  kubernetes-validate --strict --quiet $manifests
else
  echo "$dir: manifests not validated against the schemas: kubernetes-validate is not installed"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The ConfigMap's files as the pod sees them in /etc/rollcall, with the Secret's mount point moved into the
# temp dir and a dummy file for every *_file key.
python3 - "$dir/configmap.yaml" "$tmp" <<'PY'
import os, re, sys, yaml
path, tmp = sys.argv[1], sys.argv[2]
with open(path) as f:
    data = yaml.safe_load(f)["data"]
secrets = os.path.join(tmp, "secrets")
os.makedirs(secrets)
for name, text in data.items():
    text = text.replace("/run/secrets/rollcall/", secrets + "/")
    for secret in re.findall(r'^\s*\w+_file\s*=\s*"([^"]+)"', text, re.M):
        with open(secret, "w") as out:
            out.write("postgres://rollcall:dummy@db/rollcall\n" if "database" in secret else "dummy\n")
    with open(os.path.join(tmp, name), "w") as out:
        out.write(text)
PY
# Only the files: DATABASE_URL or ROLLCALL__* in the caller's environment would override what is checked.
env -i PATH="$PATH" "$binary" --config "$tmp/rollcall.toml" check --offline
echo "$dir: manifests valid, ConfigMap config loads"
