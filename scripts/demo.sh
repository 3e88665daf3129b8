#!/usr/bin/env bash
# The README's main command: install into .venv, build the default model if it is missing,
# write held-out sample images, then serve it with BentoML (http://localhost:3000 unless --port
# or BENTOML_PORT).
#
#   curl -F image=@artifacts/samples/digit-7.png localhost:3000/classify
#
# Extra arguments go to `bentoml serve` (e.g. --port 3001). Ctrl+C stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

ARTIFACT=artifacts/default
if [ ! -f "$ARTIFACT/card.json" ]; then
  echo "==> building mobilenet_v2 on digits into $ARTIFACT (train, export, optimize, evaluate, select)" >&2
  .venv/bin/zoodeploy build mobilenet_v2 --data digits -o "$ARTIFACT"
fi
# the port the server will listen on, for the hints below: bentoml's --port / -p, else BENTOML_PORT, else 3000
port="${BENTOML_PORT:-3000}"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --port | -p) port="${args[i + 1]:-$port}" ;;
    --port=*) port="${args[i]#--port=}" ;;
  esac
done
.venv/bin/zoodeploy bento samples "$ARTIFACT" -o artifacts/samples --port "$port"

# serve exactly the default artifact, whatever the calling shell has set
export ZOODEPLOY_ARTIFACT="$ARTIFACT"
unset ZOODEPLOY_MODEL ZOODEPLOY_VARIANT
echo "==> serving $ARTIFACT; try: curl -F image=@artifacts/samples/digit-7.png localhost:$port/classify" >&2
exec .venv/bin/bentoml serve "$@"
