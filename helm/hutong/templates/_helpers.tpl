{{/* The components, in start order; each has a block of the same name in values. */}}
{{- define "hutong.components" -}}
connectors streams sinks api
{{- end }}

{{- define "hutong.fullname" -}}
{{- if contains "hutong" .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-hutong" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "hutong.selectorLabels" -}}
app.kubernetes.io/name: hutong
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hutong.labels" -}}
{{ include "hutong.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hutong
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* Labels of one component: (dict "root" $ "component" "api") */}}
{{- define "hutong.componentLabels" -}}
{{ include "hutong.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "hutong.componentSelector" -}}
{{ include "hutong.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "hutong.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "hutong.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "hutong.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/*
The secret settings and which components get each (least privilege): the env
var, the values block, the field there holding the value inline, the field naming
the key in the block's existingSecret, the key in the chart's Secret.
*/}}
{{- define "hutong.secretItems" -}}
- {env: HUTONG_KAFKA_SASL_PASSWORD, block: kafka.sasl, value: password, keyField: existingSecretKey, key: kafka-sasl-password, components: [connectors, streams, sinks, api]}
- {env: HUTONG_SCHEMA_REGISTRY_URL, block: schemaRegistry, value: "", keyField: existingSecretKey, key: schema-registry-url, components: [connectors, streams, sinks, api]}
- {env: HUTONG_CLICKHOUSE_URL, block: clickhouse, value: url, keyField: existingSecretKey, key: clickhouse-url, components: [sinks, api]}
- {env: HUTONG_DOCSTORE_URL, block: docstore, value: url, keyField: existingSecretKey, key: docstore-url, components: [sinks, api]}
- {env: HUTONG_PSEUDONYM_KEY, block: warehouse, value: pseudonymKey, keyField: existingSecretKey, key: pseudonym-key, components: [streams, sinks, api]}
- {env: HUTONG_API_TOKEN, block: auth, value: apiToken, keyField: apiTokenKey, key: api-token, components: [api], optional: true}
- {env: HUTONG_ALERT_WEBHOOK_SECRET, block: alerts, value: webhookSecret, keyField: existingSecretKey, key: webhook-secret, components: [sinks]}
{{- end }}

{{/* The values block at a dotted path: (dict "root" $ "path" "kafka.sasl") */}}
{{- define "hutong.block" -}}
{{- $block := .root.Values }}
{{- range splitList "." .path }}{{ $block = index $block . }}{{ end }}
{{- toJson $block }}
{{- end }}

{{/*
The inline value of a secret item, or "" (the schema registry URL is a secret only
when it comes from an existingSecret: inline it is a plain setting in the ConfigMap).
*/}}
{{- define "hutong.secretInline" -}}
{{- $block := include "hutong.block" (dict "root" .root "path" .item.block) | fromJson }}
{{- if and .item.value (not $block.existingSecret) }}{{ index $block .item.value | default "" }}{{ end }}
{{- end }}

{{/*
The librdkafka settings of every client (HUTONG_KAFKA_CONFIG), as JSON: kafka.config,
ssl.ca.location when kafka.caSecret is mounted, and kafka.secretConfig. With any
secretConfig the whole of it is a secret (the chart's Secret, key kafka-config);
without, it is in the ConfigMap.
*/}}
{{- define "hutong.kafkaConfig" -}}
{{- $config := dict }}
{{- range $name, $value := .Values.kafka.config }}
{{- $_ := set $config $name (toString $value) }}
{{- end }}
{{- if and .Values.kafka.caSecret (not (hasKey $config "ssl.ca.location")) }}
{{- $_ := set $config "ssl.ca.location" "/etc/hutong/kafka-ca/ca.crt" }}
{{- end }}
{{- range $name, $value := .Values.kafka.secretConfig }}
{{- if hasKey $.Values.kafka.config $name }}
{{- fail (printf "kafka.%s is set in kafka.config and kafka.secretConfig: keep it in one" $name) }}
{{- end }}
{{- $_ := set $config $name (toString $value) }}
{{- end }}
{{- toJson $config }}
{{- end }}

{{/*
The warehouse pseudonym key when the chart's Secret holds it: warehouse.pseudonymKey,
or the key an earlier install generated (kept, lookup); "" when warehouse.existingSecret
names it. It seeds the warehouse's pseudonyms and the EMPI ids, so it is never made up
here: without one the chart stops (also in `helm template`, where lookup sees nothing).
*/}}
{{- define "hutong.pseudonymKey" -}}
{{- $w := .Values.warehouse }}
{{- if not $w.existingSecret }}
{{- if $w.pseudonymKey }}
{{- $w.pseudonymKey }}
{{- else }}
{{- $previous := lookup "v1" "Secret" .Release.Namespace (include "hutong.fullname" .) }}
{{- $kept := dig "data" "pseudonym-key" "" ($previous | default dict) }}
{{- if not $kept }}
{{- fail "warehouse.pseudonymKey (or warehouse.existingSecret) is required: the key seeds the warehouse's pseudonyms and the EMPI ids, so it must be chosen once and never change. Make one (openssl rand -base64 36), keep it in a Secret you manage and name it in warehouse.existingSecret, or set warehouse.pseudonymKey" }}
{{- end }}
{{- b64dec $kept }}
{{- end }}
{{- end }}
{{- end }}
