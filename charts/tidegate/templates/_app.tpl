{{/* The pull-request app's names, labels and checks (its templates are the app-*.yaml files). */}}
{{- define "tidegate.app.name" -}}
{{- printf "%s-pr-app" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "tidegate.app.selector" -}}
app.kubernetes.io/name: tidegate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: pr-app
{{- end }}

{{- define "tidegate.app.labels" -}}
{{ include "tidegate.app.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* SQLite lives on one volume: one writer pod at a time. */}}
{{- define "tidegate.app.check" -}}
{{- if and (eq .Values.app.database.kind "sqlite") (gt (int .Values.app.replicaCount) 1) -}}
{{- fail "app.replicaCount > 1 needs app.database.kind=postgresql (SQLite serves one pod)" -}}
{{- end -}}
{{- if and (eq .Values.app.database.kind "postgresql") (not .Values.app.database.urlSecret.name) -}}
{{- fail "app.database.kind=postgresql needs app.database.urlSecret.name" -}}
{{- end -}}
{{- if not (or .Values.app.github.appId .Values.app.github.tokenSecret.name .Values.app.gitlab.tokenSecret.name) -}}
{{- fail "the app needs app.github.appId, app.github.tokenSecret.name or app.gitlab.tokenSecret.name" -}}
{{- end -}}
{{- end }}
