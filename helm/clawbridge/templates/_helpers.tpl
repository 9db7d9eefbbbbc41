{{/*
Expand the name of the chart.
*/}}
{{- define "clawbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "clawbridge.fullname" -}}
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

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "clawbridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "clawbridge.labels" -}}
helm.sh/chart: {{ include "clawbridge.chart" . }}
{{ include "clawbridge.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "clawbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clawbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "clawbridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "clawbridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference for clawbridge: repository:tag, tag defaulting to the chart appVersion.
*/}}
{{- define "clawbridge.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Name of the Secret holding the gateway token/password (existing or created).
*/}}
{{- define "clawbridge.secretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- printf "%s-auth" (include "clawbridge.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Whether this chart creates the auth Secret.
*/}}
{{- define "clawbridge.createSecret" -}}
{{- if and (not .Values.auth.existingSecret) (ne .Values.auth.mode "none") }}true{{- end }}
{{- end }}

{{/*
The secret env var (OPENCLAW_GATEWAY_TOKEN or OPENCLAW_GATEWAY_PASSWORD) from the
Secret via secretKeyRef. Used by both containers. Never rendered into a ConfigMap.
*/}}
{{- define "clawbridge.secretEnv" -}}
{{- if eq .Values.auth.mode "token" }}
- name: OPENCLAW_GATEWAY_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "clawbridge.secretName" . }}
      key: {{ .Values.auth.tokenKey }}
{{- else if eq .Values.auth.mode "password" }}
- name: OPENCLAW_GATEWAY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "clawbridge.secretName" . }}
      key: {{ .Values.auth.passwordKey }}
{{- end }}
{{- end }}

{{/*
Upstream (gateway) host:port clawbridge dials.
*/}}
{{- define "clawbridge.upstream" -}}
{{- if eq .Values.mode "sidecar" }}
{{- printf "127.0.0.1:%d" (int .Values.gateway.port) }}
{{- else }}
{{- required "standalone.upstream is required in standalone mode (host:port of the gateway)" .Values.standalone.upstream }}
{{- end }}
{{- end }}

{{/*
"true" when clawbridge dials the gateway over TLS (standalone, https:// upstream).
*/}}
{{- define "clawbridge.upstreamTls" -}}
{{- if and (ne .Values.mode "sidecar") (hasPrefix "https://" (default "" .Values.standalone.upstream)) }}true{{ end }}
{{- end }}

{{/*
The gateway's openclaw.json (JSON, which is valid JSON5): the user's non-secret
gateway.config with the keys this chart owns laid on top.
*/}}
{{- define "clawbridge.openclawJson" -}}
{{- $cfg := deepCopy (default dict .Values.gateway.config) }}
{{- $gw := default dict (get $cfg "gateway") }}
{{- $auth := default dict (get $gw "auth") }}
{{- if or (hasKey $auth "token") (hasKey $auth "password") }}
{{- fail "gateway.config.gateway.auth must not contain token/password: secrets go in auth.token/auth.password or auth.existingSecret (a Secret), never in the ConfigMap" }}
{{- end }}
{{- $_ := set $auth "mode" .Values.auth.mode }}
{{- $_ := set $gw "auth" $auth }}
{{- if eq .Values.mode "sidecar" }}
{{- $_ := set $gw "bind" "loopback" }}
{{- $_ := set $gw "port" (int .Values.gateway.port) }}
{{- /* clawbridge reaches the gateway from 127.0.0.1 and names remote clients in
       X-Forwarded-For; without this the gateway refuses them (never local). */}}
{{- $tp := default list (get $gw "trustedProxies") }}
{{- if not (has "127.0.0.1" $tp) }}
{{- $tp = append $tp "127.0.0.1" }}
{{- end }}
{{- $_ := set $gw "trustedProxies" $tp }}
{{- end }}
{{- $_ := set $cfg "gateway" $gw }}
{{- toPrettyJson $cfg }}
{{- end }}

{{/*
The clawbridge.yaml file (env vars, if any are set via extraEnv, override it).
*/}}
{{- define "clawbridge.configYaml" -}}
{{- $c := .Values.clawbridge -}}
listen: {{ printf "0.0.0.0:%d" (int $c.ports.http) | quote }}
upstream: {{ include "clawbridge.upstream" . | quote }}
admin_listen: {{ printf "0.0.0.0:%d" (int $c.ports.admin) | quote }}
chat_completions: {{ $c.chatCompletions | quote }}
log_format: {{ $c.logFormat | quote }}
grace_period_secs: {{ int $c.gracePeriodSeconds }}
openclaw_config: {{ printf "%s/openclaw.json" .Values.configMountPath | quote }}
{{- with $c.threads }}
threads: {{ int . }}
{{- end }}
{{- if include "clawbridge.upstreamTls" . }}
{{- $t := .Values.standalone.tls }}
upstream_tls:
  {{- with $t.caSecret }}
  ca_file: {{ printf "%s/%s" $.Values.upstreamCaMountPath $t.caKey | quote }}
  {{- end }}
  {{- with $t.serverName }}
  server_name: {{ . | quote }}
  {{- end }}
{{- end }}
{{- with $c.limits }}
limits:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Validation of values that the schema cannot express. Included from the Deployment.
*/}}
{{- define "clawbridge.validate" -}}
{{- $c := .Values.clawbridge }}
{{- $pre := 0 }}
{{- if ne .Values.preStop.mode "none" }}{{ $pre = int .Values.preStop.seconds }}{{ end }}
{{- $need := add $pre (int $c.gracePeriodSeconds) (int .Values.drainMarginSeconds) }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (int $need) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be >= preStop.seconds (%d) + clawbridge.gracePeriodSeconds (%d) + drainMarginSeconds (%d) = %d, or in-flight streams are SIGKILLed before they drain" (int .Values.terminationGracePeriodSeconds) $pre (int $c.gracePeriodSeconds) (int .Values.drainMarginSeconds) (int $need)) }}
{{- end }}
{{- if and (eq .Values.preStop.mode "sleep") (semverCompare "<1.30.0-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "preStop.mode=sleep needs Kubernetes >= 1.30 (target is %s); use preStop.mode=exec with an image that has a sleep binary, or none" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if and (eq .Values.auth.mode "none") (or .Values.auth.token .Values.auth.password) }}
{{- fail "auth.mode is none but auth.token/auth.password is set" }}
{{- end }}
{{- if and (eq .Values.auth.mode "password") (not .Values.auth.existingSecret) (not .Values.auth.password) }}
{{- fail "auth.mode=password needs auth.password or auth.existingSecret" }}
{{- end }}
{{- if and .Values.auth.existingSecret (or .Values.auth.token .Values.auth.password) }}
{{- fail "set either auth.existingSecret or auth.token/auth.password, not both" }}
{{- end }}
{{- if and (include "clawbridge.upstreamTls" .) (not .Values.standalone.tls.caSecret) }}
{{- fail "standalone.upstream is https:// but standalone.tls.caSecret is empty: the image has no system CA roots; name a Secret holding the gateway's CA bundle" }}
{{- end }}
{{- if and (not (include "clawbridge.upstreamTls" .)) (or .Values.standalone.tls.caSecret .Values.standalone.tls.serverName) }}
{{- fail "standalone.tls is set but the upstream is not https:// (standalone mode)" }}
{{- end }}
{{- if eq (int $c.ports.http) (int $c.ports.admin) }}
{{- fail "clawbridge.ports.http and clawbridge.ports.admin must differ" }}
{{- end }}
{{- if and (eq .Values.mode "sidecar") (or (eq (int .Values.gateway.port) (int $c.ports.http)) (eq (int .Values.gateway.port) (int $c.ports.admin))) }}
{{- fail "gateway.port must differ from clawbridge's ports (the containers share the pod network namespace)" }}
{{- end }}
{{- end }}

{{/*
A preStop handler sleeping N seconds: the kubelet `sleep` action (K8s >= 1.30, works
in distroless images) or an `exec` of the image's own `sleep` binary.
Call with (dict "mode" .Values.preStop.mode "seconds" N).
*/}}
{{- define "clawbridge.preStop" -}}
{{- if eq .mode "sleep" }}
preStop:
  sleep:
    seconds: {{ int .seconds }}
{{- else if eq .mode "exec" }}
preStop:
  exec:
    command: ["sleep", {{ int .seconds | toString | quote }}]
{{- end }}
{{- end }}

{{/*
A probe: the user's probe settings, plus a default handler when none is given.
Call with (dict "probe" <values probe> "handler" <default handler dict>).
*/}}
{{- define "clawbridge.probe" -}}
{{- $p := deepCopy (default dict .probe) }}
{{- if not (or (hasKey $p "httpGet") (hasKey $p "exec") (hasKey $p "tcpSocket") (hasKey $p "grpc")) }}
{{- $p = merge $p .handler }}
{{- end }}
{{- toYaml $p }}
{{- end }}

{{/*
Default exec handler for a gateway probe: GET http://127.0.0.1:<port><path> from inside the
gateway container (the gateway is bound to loopback, unreachable for kubelet httpGet probes).
Call with (dict "port" N "path" "/healthz").
*/}}
{{- define "clawbridge.gatewayProbeHandler" -}}
exec:
  command:
    - node
    - -e
    - {{ printf "require('http').get('http://127.0.0.1:%d%s',r=>process.exit(r.statusCode<400?0:1)).on('error',()=>process.exit(1))" (int .port) .path | quote }}
{{- end }}
