{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "kubento-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "kubento-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubento-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubento-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubento-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kubento-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: kubento
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kubento-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubento-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Namespaces watched in namespaced mode; fails early on an empty list. */}}
{{- define "kubento-operator.watchedNamespaces" -}}
{{- if not .Values.watch.allNamespaces }}
{{- if not .Values.watch.namespaces }}
{{- fail "watch.namespaces must list at least one namespace when watch.allNamespaces is false (or set watch.allNamespaces=true)" }}
{{- end }}
{{- toJson .Values.watch.namespaces }}
{{- else }}
{{- toJson list }}
{{- end }}
{{- end }}

{{/* True ("true") when the replicas peer through kopf; empty otherwise (standalone). */}}
{{- define "kubento-operator.peering" -}}
{{- if and .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{- define "kubento-operator.peeringName" -}}
{{- default (include "kubento-operator.fullname" .) .Values.leaderElection.peeringName }}
{{- end }}

{{- define "kubento-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Fail early on value combinations that would deploy a misbehaving operator. */}}
{{- define "kubento-operator.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicas=%d needs leaderElection.enabled=true: standalone operators would reconcile the same objects concurrently" (int .Values.replicas)) }}
{{- end }}
{{- end }}
