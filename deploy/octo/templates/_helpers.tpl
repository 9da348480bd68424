{{/* The prefix of every object's name: <release>-octo, or the release name when it already says octo. */}}
{{- define "octo.fullname" -}}
{{- if contains "octo" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-octo" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "octo.labels" -}}
app.kubernetes.io/name: octo
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one role: include "octo.selector" (list . "api") */}}
{{- define "octo.selector" -}}
app.kubernetes.io/name: octo
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "octo.image" -}}
{{- $r := required "image.repository is required: where `make images PUSH=<ref>` pushed octo" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{ $r }}@{{ .Values.image.digest }}
{{- else -}}
{{ $r }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "octo.s3Secret" -}}
{{- .Values.s3.existingSecret | default (printf "%s-s3" (include "octo.fullname" .)) -}}
{{- end -}}

{{- define "octo.registrySecret" -}}
{{- .Values.registry.existingSecret | default (printf "%s-registry" (include "octo.fullname" .)) -}}
{{- end -}}

{{- define "octo.tokenSecret" -}}
{{- .Values.api.tokenSecret | default (printf "%s-token" (include "octo.fullname" .)) -}}
{{- end -}}

{{/* The Worker pods' pull secret in the account namespace, or "" for none. */}}
{{- define "octo.pullSecret" -}}
{{- if .Values.registry.pullSecret -}}
{{ .Values.registry.pullSecret }}
{{- else if .Values.registry.username -}}
{{ include "octo.fullname" . }}-pull
{{- end -}}
{{- end -}}

{{/* host:port of the pod API as the Workers' pods reach it. */}}
{{- define "octo.podAPI" -}}
{{ include "octo.fullname" . }}-api.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:8788
{{- end -}}

{{/* The pod security settings every role shares: no root, nothing written but /tmp. */}}
{{- define "octo.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65534
  runAsGroup: 65534
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "octo.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end -}}

{{- define "octo.s3Env" -}}
- name: AWS_ACCESS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ include "octo.s3Secret" . }}, key: accessKey}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ include "octo.s3Secret" . }}, key: secretKey}}
{{- end -}}

{{- define "octo.s3Args" -}}
- --s3-endpoint={{ required "s3.endpoint is required (host:port)" .Values.s3.endpoint }}
- --s3-region={{ .Values.s3.region }}
- --s3-bucket={{ .Values.s3.bucket }}
{{- end -}}

{{/* The control plane's pull secrets: imagePullSecrets, and the registry's when it has credentials. */}}
{{- define "octo.imagePullSecrets" -}}
{{- $names := .Values.imagePullSecrets -}}
{{- if .Values.registry.username }}{{ $names = append $names (printf "%s-pull" (include "octo.fullname" .)) }}{{ end -}}
{{- with $names }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The arguments every `octo api` of the chart shares (the API replicas and the D1 owner). */}}
{{- define "octo.apiArgs" -}}
- api
- --listen=:8787
- --skip-crds
- --account-id={{ required "account.id is required (32 hex digits)" .Values.account.id }}
- --account-name={{ .Values.account.name }}
- --subdomain={{ .Values.account.subdomain }}
- --email={{ .Values.account.email }}
- --account-namespace={{ .Values.account.namespace }}
{{- with include "octo.pullSecret" . }}
- --image-pull-secret={{ . }}
{{- end }}
- --pod-api-listen=:8788
- --pod-api-key-file=/etc/octo/pod-api/key
{{- range .Values.api.podCIDRs }}
- --pod-cidr={{ . }}
{{- end }}
- --work-dir=/tmp
{{ include "octo.s3Args" . }}
{{- end -}}

{{- define "octo.apiEnv" -}}
- name: OCTO_API_TOKEN
  valueFrom: {secretKeyRef: {name: {{ include "octo.tokenSecret" . }}, key: token}}
{{ include "octo.s3Env" . }}
{{- end -}}

{{/* The owner (state StatefulSet): its Service host, and its API's URL. */}}
{{- define "octo.ownerHost" -}}
{{ include "octo.fullname" . }}-state.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end -}}

{{- define "octo.ownerURL" -}}
http://{{ include "octo.ownerHost" . }}
{{- end -}}

{{- define "octo.feedTokenEnv" -}}
- name: OCTO_TAIL_FEED_TOKEN
  valueFrom: {secretKeyRef: {name: {{ include "octo.fullname" . }}-tail-feed, key: token}}
{{- end -}}

{{- define "octo.credentialsChecksum" -}}
{{- list .Values.s3.accessKey .Values.s3.secretKey .Values.registry.username .Values.registry.password | toJson | sha256sum | trunc 16 -}}
{{- end -}}
