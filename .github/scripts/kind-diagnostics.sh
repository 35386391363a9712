#!/usr/bin/env bash
# Collect what explains a failed kind run into DIR and summarise it in the job summary:
# our namespace's objects and events, the operator's logs, the head pod's Ray logs.
set -uo pipefail
dir="${1:-diagnostics}"
ns="${NAMESPACE:-serve-chaos}"
mkdir -p "$dir"
kubectl get nodes -o wide >"$dir/nodes.txt" 2>&1
kubectl -n "$ns" get all,rayservices,rayclusters,endpointslices,pvc,jobs -o wide >"$dir/get.txt" 2>&1
kubectl -n "$ns" describe rayservices,rayclusters,pods,services >"$dir/describe.txt" 2>&1
kubectl -n "$ns" get events --sort-by=.lastTimestamp >"$dir/events.txt" 2>&1
kubectl -n kuberay-system logs deploy/kuberay-operator --tail=2000 >"$dir/operator.log" 2>&1
kubectl -n "$ns" get stresschaos,networkchaos -o yaml >"$dir/chaos-objects.yaml" 2>&1
kubectl -n chaos-mesh logs deploy/chaos-controller-manager --tail=2000 >"$dir/chaos-mesh.log" 2>&1
head=$(kubectl -n "$ns" get pods -l ray.io/node-type=head -o jsonpath='{.items[0].metadata.name}' 2>/dev/null)
if [ -n "$head" ]; then
  kubectl -n "$ns" exec "$head" -- sh -c 'tar -C /tmp/ray/session_latest -czf - logs' >"$dir/head-ray-logs.tgz" 2>/dev/null \
    || kubectl -n "$ns" logs "$head" --all-containers >"$dir/head.log" 2>&1
fi
{
  echo "## kind diagnostics"
  echo '```'
  kubectl -n "$ns" get rayservices,rayclusters,pods -o wide 2>&1 | head -40
  echo '```'
  echo "### Warning events"
  echo '```'
  grep -i warning "$dir/events.txt" | tail -20
  echo '```'
  echo "### Operator errors"
  echo '```'
  grep -iE '"level":"error"|error' "$dir/operator.log" | tail -15
  echo '```'
} >>"${GITHUB_STEP_SUMMARY:-/dev/stdout}"
