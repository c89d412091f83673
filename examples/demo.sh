#!/usr/bin/env bash
# The main job, end to end: a busybox container made by pyrunc, its state, and
# an exec into it.  Run as root after scripts/setup.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bundle=$(mktemp -d /tmp/pyrunc-demo.XXXXXX)
trap 'pyrunc delete --force demo >/dev/null 2>&1 || true; rm -rf "$bundle"' EXIT

"$here/mk-busybox-bundle.sh" --no-terminal --args 'sleep 3600' "$bundle" >/dev/null
pyrunc delete --force demo >/dev/null 2>&1 || true
set -x
pyrunc run -d --bundle "$bundle" demo
pyrunc state demo
pyrunc exec demo ps
pyrunc exec --user nobody demo id
pyrunc delete --force demo
