{{/*
RBAC rules. They mirror kubento_operator/rbac.py exactly (tests/unit/test_chart.py
compares them): change both together.
*/}}

{{/* Rules on namespaced objects: granted cluster-wide, or per watched namespace. */}}
{{- define "kubento-operator.namespacedRules" -}}
- apiGroups: ["serving.kubento.io"]
  resources: ["bentodeployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["serving.kubento.io"]
  resources: ["bentodeployments/status"]
  verbs: ["get", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* Rules on cluster-scoped objects, needed in both modes. */}}
{{- define "kubento-operator.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}

{{/* kopf peering (leader election) objects. */}}
{{- define "kubento-operator.clusterPeeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}

{{- define "kubento-operator.namespacedPeeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
