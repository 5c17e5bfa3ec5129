{{/* Chart name, truncated to a DNS label. */}}
{{- define "streamer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name used as the prefix of every object. */}}
{{- define "streamer.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "streamer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "streamer.labels" -}}
helm.sh/chart: {{ include "streamer.chart" . }}
{{ include "streamer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: streamer
{{- end -}}

{{- define "streamer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "streamer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "streamer.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A valid Kubernetes label value from any string: at most 63 characters of [A-Za-z0-9._-],
starting and ending with an alphanumeric character (or empty).
*/}}
{{- define "streamer.labelValue" -}}
{{- regexReplaceAll "-{2,}" (regexReplaceAll "[^A-Za-z0-9._-]+" (toString .) "-") "-" | trunc 63 | trimAll "-._" -}}
{{- end -}}

{{/* A DNS-1123 label fragment from a stream name. */}}
{{- define "streamer.slug" -}}
{{- regexReplaceAll "-{2,}" (regexReplaceAll "[^a-z0-9-]+" (lower (toString .)) "-") "-" | trimAll "-" -}}
{{- end -}}

{{/*
The normalised view of one stream entry, as YAML. Call with (dict "root" $ "stream" $entry).
Fields: name, resourceName, duration, gracePeriod, ingestRegion, playbackRegion, mode
("url" or "livepeer"), secretName (the Secret with INJEST_URL/PLAYBACK_URL, or with the
per-stream LIVEPEER_API_KEY), createSecret, ingestUrl, playbackUrl, apiKeySecretName,
apiKeySecretKey, streamApiKey, whepUrl, webrtc (whether `playback` lists webrtc).
*/}}
{{- define "streamer.stream" -}}
{{- $root := .root -}}
{{- $s := .stream -}}
{{- $name := required "every entry of .Values.streams needs a name" $s.name | toString -}}
{{- $slug := include "streamer.slug" $name -}}
{{- if not $slug -}}
{{- fail (printf "stream name %q has no letters or digits to build object names from" $name) -}}
{{- end -}}
{{- $resourceName := printf "%s-%s" (include "streamer.fullname" $root) $slug | trunc 63 | trimSuffix "-" -}}
{{- $ingestUrl := coalesce $s.injest_url $s.ingest_url "" -}}
{{- $mode := ternary "livepeer" "url" (and (hasKey $s "livepeer") (not $ingestUrl) (not $s.existingSecret)) -}}
{{- $lp := default dict $s.livepeer -}}
{{- $apiKeySecretName := "" -}}
{{- $apiKeySecretKey := "" -}}
{{- if eq $mode "livepeer" -}}
  {{- if $lp.existingSecret -}}
    {{- $apiKeySecretName = $lp.existingSecret -}}
    {{- $apiKeySecretKey = default "LIVEPEER_API_KEY" $lp.existingSecretKey -}}
  {{- else if $lp.apiKey -}}
    {{- $apiKeySecretName = $resourceName -}}
    {{- $apiKeySecretKey = "LIVEPEER_API_KEY" -}}
  {{- else if $root.Values.livepeer.existingSecret -}}
    {{- $apiKeySecretName = $root.Values.livepeer.existingSecret -}}
    {{- $apiKeySecretKey = $root.Values.livepeer.existingSecretKey -}}
  {{- else if $root.Values.livepeer.apiKey -}}
    {{- $apiKeySecretName = include "streamer.fullname" $root -}}
    {{- $apiKeySecretKey = "LIVEPEER_API_KEY" -}}
  {{- else -}}
    {{- fail (printf "stream %q uses Livepeer API mode but no API key is configured: set livepeer.apiKey or livepeer.existingSecret (globally or on the stream)" $name) -}}
  {{- end -}}
{{- end -}}
{{- $createSecret := or (and (eq $mode "url") (not $s.existingSecret)) (and (eq $mode "livepeer") (not $lp.existingSecret) (not (empty $lp.apiKey))) -}}
name: {{ $name | quote }}
slug: {{ $slug | quote }}
resourceName: {{ $resourceName | quote }}
duration: {{ default $root.Values.defaults.duration $s.duration | toString | quote }}
gracePeriod: {{ default $root.Values.defaults.grace_period $s.grace_period | toString | quote }}
ingestRegion: {{ coalesce $s.injest_region $s.ingest_region "" | toString | quote }}
playbackRegion: {{ default "" $s.playback_region | toString | quote }}
mode: {{ $mode }}
secretName: {{ default $resourceName $s.existingSecret | quote }}
createSecret: {{ $createSecret }}
ingestUrl: {{ $ingestUrl | quote }}
playbackUrl: {{ default "" $s.playback_url | quote }}
whepUrl: {{ default "" $s.whep_url | quote }}
webrtc: {{ has "webrtc" (default list $s.playback) }}
apiKeySecretName: {{ $apiKeySecretName | quote }}
apiKeySecretKey: {{ $apiKeySecretKey | quote }}
streamApiKey: {{ default "" $lp.apiKey | quote }}
{{- end -}}

{{/*
The monitor's streams file for one stream (STREAMER_CONFIG). Secrets are ${ENV} references,
expanded by the monitor from the environment that the Secret fills.
Call with (dict "root" $ "stream" $entry "s" $normalised).
*/}}
{{- define "streamer.streamConfig" -}}
{{- $s := .stream -}}
{{- $n := .s -}}
{{- $entry := dict "name" $n.name "duration" $n.duration "grace_period" $n.gracePeriod "injest_region" $n.ingestRegion "playback_region" $n.playbackRegion -}}
{{- if eq $n.mode "url" -}}
{{- $_ := set $entry "injest_url" "${INJEST_URL}" -}}
{{- $_ := set $entry "playback_url" "${PLAYBACK_URL}" -}}
{{- if include "streamer.whepFromSecret" $n -}}
{{- $_ := set $entry "whep_url" "${WHEP_URL}" -}}
{{- end -}}
{{- else -}}
{{- $_ := set $entry "livepeer" (omit $s.livepeer "apiKey" "existingSecret" "existingSecretKey") -}}
{{- end -}}
{{- range $key := list "expected_renditions" "checks" "startup_timeout" "connect_timeout" "drain_timeout" "clip" "playback" "freeze_ms" -}}
{{- if hasKey $s $key -}}
{{- $_ := set $entry $key (get $s $key) -}}
{{- end -}}
{{- end -}}
{{- if and $n.webrtc .root.Values.webrtc.iceServers -}}
{{- $_ := set $entry "ice_servers" "${ICE_SERVERS}" -}}
{{- end -}}
{{- toYaml (dict "streams" (list $entry)) -}}
{{- end -}}

{{/* The alert state PersistentVolumeClaim of one stream (from its normalised view). */}}
{{- define "streamer.alertStateClaim" -}}
{{- printf "%s-alert-state" (.resourceName | trunc 51 | trimSuffix "-") -}}
{{- end -}}

{{/* The test.livepeer.io/* labels of one stream (from its normalised view). */}}
{{- define "streamer.testLabels" -}}
test.livepeer.io/name: {{ include "streamer.labelValue" .name | quote }}
test.livepeer.io/duration: {{ include "streamer.labelValue" .duration | quote }}
test.livepeer.io/injest_region: {{ include "streamer.labelValue" .ingestRegion | quote }}
test.livepeer.io/playback_region: {{ include "streamer.labelValue" .playbackRegion | quote }}
{{- end -}}

{{/* The data of a stream's own Secret (base64), empty when the chart creates none. */}}
{{- define "streamer.streamSecretData" -}}
{{- $s := .s -}}
{{- if $s.createSecret -}}
{{- if eq $s.mode "url" -}}
INJEST_URL: {{ $s.ingestUrl | b64enc | quote }}
PLAYBACK_URL: {{ $s.playbackUrl | b64enc | quote }}
{{- with $s.whepUrl }}
WHEP_URL: {{ . | b64enc | quote }}
{{- end }}
{{- else -}}
LIVEPEER_API_KEY: {{ $s.streamApiKey | b64enc | quote }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The data of the release-wide Secret (base64): API key, signing key, notifier secrets. */}}
{{- define "streamer.sharedSecretData" -}}
{{- $lp := .Values.livepeer -}}
{{- $n := .Values.notifications -}}
{{- with .Values.webrtc.iceServers }}
ICE_SERVERS: {{ join "," . | b64enc | quote }}
{{- end }}
{{- if and $lp.apiKey (not $lp.existingSecret) }}
LIVEPEER_API_KEY: {{ $lp.apiKey | b64enc | quote }}
{{- end }}
{{- if and $lp.signingKey (not $lp.signingKeyExistingSecret) }}
LIVEPEER_SIGNING_KEY: {{ $lp.signingKey | b64enc | quote }}
{{- end }}
{{- if not $n.existingSecret }}
{{- range $key, $value := dict "DISCORD_WEBHOOK_URL" $n.discordWebhookUrl "SLACK_WEBHOOK_URL" $n.slackWebhookUrl "WEBHOOK_URL" $n.webhookUrl "WEBHOOK_SECRET" $n.webhookSecret "PAGERDUTY_ROUTING_KEY" $n.pagerdutyRoutingKey }}
{{- if $value }}
{{ $key }}: {{ $value | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* LIVEPEER_SIGNING_KEY(_ID) env entries for API-mode streams. */}}
{{- define "streamer.signingKeyEnv" -}}
{{- $lp := .Values.livepeer -}}
{{- if $lp.signingKeyExistingSecret }}
- name: LIVEPEER_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $lp.signingKeyExistingSecret }}
      key: {{ $lp.signingKeyExistingSecretKey }}
{{- else if $lp.signingKey }}
- name: LIVEPEER_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "streamer.fullname" . }}
      key: LIVEPEER_SIGNING_KEY
{{- end }}
{{- with $lp.signingKeyId }}
- name: LIVEPEER_SIGNING_KEY_ID
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Notifier env entries: secrets by secretKeyRef, the rest as plain values. */}}
{{- define "streamer.notificationEnv" -}}
{{- $n := .Values.notifications -}}
{{- $fullname := include "streamer.fullname" . -}}
{{- range $key, $value := dict "DISCORD_WEBHOOK_URL" $n.discordWebhookUrl "SLACK_WEBHOOK_URL" $n.slackWebhookUrl "WEBHOOK_URL" $n.webhookUrl "WEBHOOK_SECRET" $n.webhookSecret "PAGERDUTY_ROUTING_KEY" $n.pagerdutyRoutingKey }}
{{- if $n.existingSecret }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $n.existingSecret }}
      key: {{ $key }}
      optional: true
{{- else if $value }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $fullname }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- with $n.dashboardUrl }}
- name: DASHBOARD_URL
  value: {{ . | quote }}
{{- end }}
- name: ALERT_AFTER_FAILURES
  value: {{ $n.alertAfterFailures | toString | quote }}
{{- end -}}

{{/*
The sharded layout: every stream of .Values.streams in one streams file, with the stream's
secrets as ${STREAM_<i>_...} references (i: its position in the list). Returns YAML with
`config` (the streams file), `secretData` (base64 data of the chart-created Secret: the URLs
and per-stream API keys given as values), `secretEnv` (EnvVars from Secrets the user manages)
and `globalApiKey` (true when an API-mode stream uses the release-wide key).
*/}}
{{- define "streamer.sharded" -}}
{{- $root := . -}}
{{- $entries := list -}}
{{- $secretData := dict -}}
{{- $secretEnv := list -}}
{{- $globalApiKey := false -}}
{{- $seen := dict -}}
{{- range $i, $stream := .Values.streams -}}
{{- $s := include "streamer.stream" (dict "root" $root "stream" $stream) | fromYaml -}}
{{- if hasKey $seen $s.name -}}
{{- fail (printf "streams: the name %q is used twice; stream names must be unique" $s.name) -}}
{{- end -}}
{{- $_ := set $seen $s.name true -}}
{{- range $key := list "resources" "nodeSelector" "tolerations" "affinity" "extraEnv" "podAnnotations" -}}
{{- if hasKey $stream $key -}}
{{- fail (printf "stream %q sets %s, which layout sharded cannot apply to one stream: set it chart-wide (sharded.resources for resources)" $s.name $key) -}}
{{- end -}}
{{- end -}}
{{- $prefix := printf "STREAM_%d_" $i -}}
{{- $entry := dict "name" $s.name "duration" $s.duration "grace_period" $s.gracePeriod "injest_region" $s.ingestRegion "playback_region" $s.playbackRegion -}}
{{- if eq $s.mode "url" -}}
{{- $_ := set $entry "injest_url" (printf "${%sINJEST_URL}" $prefix) -}}
{{- $_ := set $entry "playback_url" (printf "${%sPLAYBACK_URL}" $prefix) -}}
{{- if include "streamer.whepFromSecret" $s -}}
{{- $_ := set $entry "whep_url" (printf "${%sWHEP_URL}" $prefix) -}}
{{- end -}}
{{- if $s.createSecret -}}
{{- $_ := set $secretData (printf "%sINJEST_URL" $prefix) ($s.ingestUrl | b64enc) -}}
{{- $_ := set $secretData (printf "%sPLAYBACK_URL" $prefix) ($s.playbackUrl | b64enc) -}}
{{- with $s.whepUrl -}}
{{- $_ := set $secretData (printf "%sWHEP_URL" $prefix) (. | b64enc) -}}
{{- end -}}
{{- else -}}
{{- range $key := concat (list "INJEST_URL" "PLAYBACK_URL") (ternary (list "WHEP_URL") (list) $s.webrtc) -}}
{{- $secretEnv = append $secretEnv (dict "name" (printf "%s%s" $prefix $key) "valueFrom" (dict "secretKeyRef" (dict "name" $s.secretName "key" $key))) -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- $given := default dict $stream.livepeer -}}
{{- $lp := omit $given "apiKey" "existingSecret" "existingSecretKey" -}}
{{- $ownKey := or $given.apiKey $given.existingSecret -}}
{{- if $ownKey -}}
{{- $_ := set $lp "api_key" (printf "${%sLIVEPEER_API_KEY}" $prefix) -}}
{{- if $given.existingSecret -}}
{{- $secretEnv = append $secretEnv (dict "name" (printf "%sLIVEPEER_API_KEY" $prefix) "valueFrom" (dict "secretKeyRef" (dict "name" $s.apiKeySecretName "key" $s.apiKeySecretKey))) -}}
{{- else -}}
{{- $_ := set $secretData (printf "%sLIVEPEER_API_KEY" $prefix) ($s.streamApiKey | b64enc) -}}
{{- end -}}
{{- else -}}
{{- $globalApiKey = true -}}
{{- end -}}
{{- $_ := set $entry "livepeer" $lp -}}
{{- end -}}
{{- range $key := list "expected_renditions" "checks" "startup_timeout" "connect_timeout" "drain_timeout" "clip" "playback" "freeze_ms" -}}
{{- if hasKey $stream $key -}}
{{- $_ := set $entry $key (get $stream $key) -}}
{{- end -}}
{{- end -}}
{{- if and $s.webrtc $root.Values.webrtc.iceServers -}}
{{- $_ := set $entry "ice_servers" "${ICE_SERVERS}" -}}
{{- end -}}
{{- $entries = append $entries $entry -}}
{{- end -}}
config: {{ toYaml (dict "streams" $entries) | quote }}
secretData: {{ toJson $secretData }}
secretEnv: {{ toJson $secretEnv }}
globalApiKey: {{ $globalApiKey }}
{{- end -}}

{{/*
The sharded layout's per-pod resources: sharded.resources, or sized from the streams per pod
(docs/scale.md): CPU base + per stream (by decode mode), memory base + per stream, the
memory limit twice the request (at least sizing.minMemoryLimitMi), no CPU limit.
*/}}
{{- define "streamer.shardResources" -}}
{{- $v := .Values -}}
{{- if $v.sharded.resources -}}
{{- toYaml $v.sharded.resources -}}
{{- else -}}
{{- $z := $v.sharded.sizing -}}
{{- $perPod := div (add (len $v.streams) (sub $v.replicas 1)) $v.replicas -}}
{{- $cpuPerStream := ternary $z.cpuMillisPerStream.keyframe $z.cpuMillisPerStream.full (eq $v.decodeMode "keyframe") -}}
{{- $cpu := add $z.baseCpuMillis (mul $cpuPerStream $perPod) -}}
{{- $memory := add $z.baseMemoryMi (mul $z.memoryMiPerStream $perPod) -}}
requests:
  cpu: {{ printf "%dm" (int $cpu) }}
  memory: {{ printf "%dMi" (int $memory) }}
limits:
  memory: {{ printf "%dMi" (int (max $z.minMemoryLimitMi (mul 2 $memory))) }}
{{- end -}}
{{- end -}}

{{/*
Whether a URL-mode stream (normalised view) takes its WHEP URL from its Secret: the chart's
when `whep_url` is given, an existing one's (key WHEP_URL) when `playback` lists webrtc.
Without it, WebRTC playback uses the playback URL. Renders "true" or nothing.
*/}}
{{- define "streamer.whepFromSecret" -}}
{{- if and (eq .mode "url") (or .whepUrl (and (not .createSecret) .webrtc)) -}}true{{- end -}}
{{- end -}}

{{/* ICE_SERVERS from the release-wide Secret, for streams that play WebRTC. */}}
{{- define "streamer.webrtcEnv" -}}
{{- if .Values.webrtc.iceServers }}
- name: ICE_SERVERS
  valueFrom:
    secretKeyRef:
      name: {{ include "streamer.fullname" . }}
      key: ICE_SERVERS
{{- end }}
{{- end -}}
