#!/usr/bin/env bash
# GitHub masks each secret as it is stored; values derived from one are not masked unless a workflow says
# so. Prints ::add-mask:: for the forms a step could print (retrain.yml runs this before any of them):
# the password inside MLFLOW_TRACKING_URI (scheme://user:password@host) as written and URL-decoded, the
# basic-auth token MLflow builds from MLFLOW_TRACKING_USERNAME / _PASSWORD, and each cookie value of
# KF_PIPELINES_COOKIES (a Dex / oauth2-proxy session). Reads only the environment; prints nothing else.
set -euo pipefail

mask() { if [ -n "$1" ]; then echo "::add-mask::$1"; fi; }

uri=${MLFLOW_TRACKING_URI:-}
rest=${uri#*://}
authority=${rest%%/*}
if [ "$rest" != "$uri" ] && [[ "$authority" == *@* ]]; then
  userinfo=${authority%@*}
  password=${userinfo#*:}
  if [ "$password" != "$userinfo" ]; then
    mask "$password"
    mask "$(printf '%b' "${password//%/\\x}")"
  fi
fi
if [ -n "${MLFLOW_TRACKING_PASSWORD:-}" ]; then
  mask "$(printf '%s:%s' "${MLFLOW_TRACKING_USERNAME:-}" "$MLFLOW_TRACKING_PASSWORD" | base64 -w0)"
fi
IFS=';' read -ra cookies <<< "${KF_PIPELINES_COOKIES:-}"
for cookie in "${cookies[@]}"; do
  value=${cookie#*=}
  mask "${value// /}"
done
