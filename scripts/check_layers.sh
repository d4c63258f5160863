#!/usr/bin/env bash
# The architecture's checks, run by scripts/test.sh before the tests (or alone, once the venv has
# keadm[test]): the layer contracts ([tool.importlinter] in pyproject.toml) and the type checks
# ([tool.mypy]). Every check runs; the script fails if any of them failed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_DIR"

# Strict: the cloud-edge link's sans-I/O core (once it exists), the codec, beehive and certs.
strict=(cores/wire cores/beehive certs)
if [ -f cores/link/__init__.py ]; then
  strict=(cores/link "${strict[@]}")
fi
failed=()

echo "==> import contracts: lint-imports"
"$VENV_DIR/bin/lint-imports" --no-cache || failed+=("lint-imports")

echo "==> mypy --strict ${strict[*]}"
"$VENV_DIR/bin/mypy" --strict --follow-imports=silent "${strict[@]}" || failed+=("mypy --strict")

echo "==> mypy cores keadm benchmarks (all but the strict packages)"
"$VENV_DIR/bin/mypy" --follow-imports=silent --exclude '^cores/(link|wire|beehive)/' cores keadm benchmarks \
  || failed+=("mypy")

if [ ${#failed[@]} -gt 0 ]; then
  echo "error: failed: ${failed[*]}" >&2
  exit 1
fi
