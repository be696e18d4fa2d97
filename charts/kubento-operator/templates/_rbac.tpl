{{/*
RBAC rules: exactly kubento_operator.rbac.rules(cluster_wide=..., peering=...), in the
same order (tests/unit/test_chart.py compares them). Change both together.
*/}}
{{- define "kubento-operator.rules" -}}
- apiGroups: ["serving.kubento.io"]
  resources: ["bentodeployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["serving.kubento.io"]
  resources: ["bentodeployments/status"]
  verbs: ["patch"]
- apiGroups: ["serving.kubento.io"]
  resources: ["bentodeployments/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["create", "patch", "list", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["create", "patch", "list", "watch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["create", "patch", "list", "watch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses", "networkpolicies"]
  verbs: ["create", "patch", "list", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["create", "patch", "list", "delete"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["create", "patch", "list", "watch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
{{- if include "kubento-operator.peering" . }}
- apiGroups: ["kopf.dev"]
  resources: [{{ ternary "clusterkopfpeerings" "kopfpeerings" .Values.watch.allNamespaces | quote }}]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end }}
