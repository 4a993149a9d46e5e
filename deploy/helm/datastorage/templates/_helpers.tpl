{{/*
The prefix of every name: fullnameOverride, else the release name when it contains "datastorage",
else "<release>-datastorage". Release "datastorage" names the objects as the kustomize manifests do.
*/}}
{{- define "datastorage.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "datastorage" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-datastorage" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "datastorage.central.name" -}}
{{- include "datastorage.fullname" . }}-central
{{- end -}}

{{/* Labels on every object. */}}
{{- define "datastorage.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kubernaut
{{- end -}}

{{/* The central's selector: the kustomize manifests' name label, and the release. */}}
{{- define "datastorage.central.selectorLabels" -}}
app.kubernetes.io/name: datastorage-central
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "datastorage.central.labels" -}}
{{ include "datastorage.labels" . }}
app.kubernetes.io/name: datastorage-central
{{- end -}}

{{- define "datastorage.central.image" -}}
{{ .Values.central.image.repository }}:{{ .Values.central.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The hardened security contexts of every container and pod of the chart (images.UID). */}}
{{- define "datastorage.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "datastorage.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* DATABASE_URL and VECTOR_DATABASE_URL from a Secret; the argument is a database values block
(secretName, urlKey, vectorURLKey). */}}
{{- define "datastorage.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .urlKey | default "database-url" }}
- name: VECTOR_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .vectorURLKey | default "vector-database-url" }}
      optional: true
{{- end -}}

{{/* The partition and retention flags the central and the maintenance CronJob share. */}}
{{- define "datastorage.lifecycleArgs" -}}
- --partition-period={{ .Values.central.partitionPeriod }}
- --partitions-ahead={{ int64 .Values.central.partitionsAhead }}
{{- with .Values.central.retention }}
- --retention={{ . }}
{{- end }}
{{- end -}}
