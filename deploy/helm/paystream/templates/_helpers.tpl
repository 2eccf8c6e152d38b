{{- define "paystream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "paystream.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "paystream.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "paystream.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "paystream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "paystream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "processor") */}}
{{- define "paystream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "paystream.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "paystream.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "paystream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "paystream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* A setting from a value, or from a Secret: (dict "name" ENV "value" v "secret" s "key" k "what" desc) */}}
{{- define "paystream.envFromValueOrSecret" -}}
- name: {{ .name }}
{{- if .secret }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- else }}
  value: {{ required (printf "%s is required (or name a Secret holding it)" .what) .value | quote }}
{{- end }}
{{- end }}

{{/*
The collector's API token from its Secret, required unless insecureOpenApi (then nothing).
Used by the collector (which checks it) and the dashboard (which sends it).
*/}}
{{- define "paystream.collectorToken" -}}
{{- $t := .Values.collector.apiToken }}
{{- if $t.existingSecret -}}
- name: PAYSTREAM_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $t.existingSecret }}
      key: {{ $t.key }}
{{- else if not .Values.insecureOpenApi }}
{{- fail "collector.apiToken.existingSecret is required: a Secret holding the control API's bearer token (key collector.apiToken.key); or set insecureOpenApi=true to run it open" }}
{{- end }}
{{- end }}

{{/* Env shared by both components. Pods listen on every interface: the commands default to loopback. */}}
{{- define "paystream.commonEnv" -}}
- name: PAYSTREAM_KAFKA_BROKERS
  value: {{ required "kafka.brokers is required (host:port[,host:port])" .Values.kafka.brokers | quote }}
- name: PAYSTREAM_TOPIC
  value: {{ .Values.kafka.topic | quote }}
- name: PAYSTREAM_HTTP_HOST
  value: "0.0.0.0"
{{- end }}

{{- define "paystream.volumes.tmp" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/* NetworkPolicy parts (templates/networkpolicy.yaml). */}}

{{/*
Ingress to one named port from a list of peers. No peers: no rule, so nothing comes in (a rule
with an empty `from` would let everything in).
*/}}
{{- define "paystream.np.ingress" -}}
{{- if .peers -}}
ingress:
  - ports:
      - port: {{ .port }}
        protocol: TCP
    from:
      {{- toYaml .peers | nindent 6 }}
{{- else -}}
ingress: []
{{- end }}
{{- end }}

{{/* DNS, to the cluster's resolver. */}}
{{- define "paystream.np.dns" -}}
- to:
    {{- toYaml .to | nindent 4 }}
  ports:
    {{- toYaml .ports | nindent 4 }}
{{- end }}

{{/* Egress to an outside service's TCP ports; no `to`: any address, on those ports only. */}}
{{- define "paystream.np.egress" -}}
- ports:
    {{- range .ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
"true" when a prometheus-operator object is to be rendered: (dict "ctx" $ "enabled" v "kind" "ServiceMonitor").
"auto" asks the cluster for the CRD, so an install without the operator does not fail on it.
*/}}
{{- define "paystream.operatorObject" -}}
{{- if eq (toString .enabled) "auto" -}}
{{- if .ctx.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind) }}true{{ end -}}
{{- else if .enabled -}}
true
{{- end -}}
{{- end }}

{{/*
Refuses processor replica bounds no consumer group can use: (dict "ctx" $ "min" n "minName" s "max" n "maxName" s).
*/}}
{{- define "paystream.processor.checkReplicas" -}}
{{- $partitions := .ctx.Values.processor.autoscaling.partitions }}
{{- if gt (int .max) (int $partitions) }}
{{- fail (printf "%s (%v) must not exceed processor.autoscaling.partitions, the partitions of %s (%v): a consumer without a partition sits idle" .maxName .max .ctx.Values.kafka.topic $partitions) }}
{{- end }}
{{- if and .minName (gt (int .min) (int .max)) }}
{{- fail (printf "%s (%v) must not exceed %s (%v)" .minName .min .maxName .max) }}
{{- end }}
{{- end }}

{{/*
Scaling behaviour of the processor's HPA (KEDA's or the chart's): up by at most 100% every 30 s,
down by at most 50% every 60 s after the stabilization window. Every change is a rebalance, and
each moved partition is rebuilt from Kafka before it is processed again.
*/}}
{{- define "paystream.processor.behavior" -}}
scaleUp:
  stabilizationWindowSeconds: 0
  policies:
    - type: Percent
      value: 100
      periodSeconds: 30
scaleDown:
  stabilizationWindowSeconds: {{ . }}
  policies:
    - type: Percent
      value: 50
      periodSeconds: 60
{{- end }}

{{/*
An Alertmanager receiver credential: (dict "what" "alertmanagerConfig.slack" "value" v "valueName" "webhookUrl"
"secret" s "key" k "field" "api_url" "mount" dir). A value goes inline; a Secret is read by the
Alertmanager from where it is mounted (<field>_file).
*/}}
{{- define "paystream.am.credential" -}}
{{- if and .value .secret }}
{{- fail (printf "%s: set %s or existingSecret, not both" .what .valueName) }}
{{- else if .value }}
{{ .field }}: {{ .value | quote }}
{{- else if .secret }}
{{ .field }}_file: {{ printf "%s/%s/%s" (trimSuffix "/" .mount) .secret .key | quote }}
{{- else }}
{{- fail (printf "%s.%s or %s.existingSecret is required with alertmanagerConfig.enabled: the chart never defaults a receiver's credentials" .what .valueName .what) }}
{{- end }}
{{- end }}
