{{/* Chart name, truncated to the 63 characters Kubernetes allows. */}}
{{- define "upstash-rotator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name unless already included. */}}
{{- define "upstash-rotator.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "upstash-rotator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "upstash-rotator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "upstash-rotator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "upstash-rotator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "upstash-rotator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "upstash-rotator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "upstash-rotator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Rules on the operator's own resources and on Secrets: every verb it uses, no other. */}}
{{- define "upstash-rotator.rules" -}}
- apiGroups: ["upstash-rotator.io"]
  resources: ["redispasswordrotations"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["upstash-rotator.io"]
  resources: ["redispasswordrotations/status"]
  verbs: ["patch"]
# Setting an ownerReference with blockOwnerDeletion needs this where the
# OwnerReferencesPermissionEnforcement admission plugin is on.
- apiGroups: ["upstash-rotator.io"]
  resources: ["redispasswordrotations/finalizers"]
  verbs: ["update"]
# get: credential and target Secrets; list/watch: change triggers; create and
# patch: server-side apply of the Secrets it writes (apply creates). Never delete.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# UpstashAccounts: read by the resources that name them; their status
# (validation, users) written by the operator.
- apiGroups: ["upstash-rotator.io"]
  resources: ["upstashaccounts"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["upstash-rotator.io"]
  resources: ["upstashaccounts/status"]
  verbs: ["patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.rolloutRestart.enabled }}
# spec.rolloutRestart: one pod-template annotation, as kubectl rollout restart
# sets it. Patch only: the operator never reads, lists or deletes workloads.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["patch"]
{{- end }}
{{- end }}

{{- define "upstash-rotator.clusterResourceNamespace" -}}
{{- .Values.clusterAccounts.namespace | default .Release.Namespace }}
{{- end }}

{{/* Cluster-scoped: ClusterUpstashAccounts and namespace labels. */}}
{{- define "upstash-rotator.clusterAccountRules" -}}
- apiGroups: ["upstash-rotator.io"]
  resources: ["clusterupstashaccounts"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["upstash-rotator.io"]
  resources: ["clusterupstashaccounts/status"]
  verbs: ["patch"]
# allowedNamespaces.selector matches a namespace's labels, as a watch of
# namespaces delivers them.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
  {{- with .Values.watchNamespaces }}
  # Only the watched ones: the operator lists and watches each by name.
  resourceNames: {{ toJson . }}
  {{- end }}
{{- end }}
