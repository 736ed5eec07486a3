{{/* Name prefix of every object: fullnameOverride, or the release name (plus "-weir" unless it already says weir). */}}
{{- define "weir.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "weir" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-weir" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "weir.labels" -}}
app.kubernetes.io/name: weir
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component (ingester or router); call with (dict "ctx" . "component" "router"). */}}
{{- define "weir.selectorLabels" -}}
app.kubernetes.io/name: weir
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "weir.headless" -}}{{ .Values.ingester.headlessServiceName | default (printf "%s-ingester-headless" (include "weir.fullname" .)) }}{{- end -}}
{{- define "weir.hashringsConfigMap" -}}{{ include "weir.fullname" . }}-hashrings{{- end -}}
{{- define "weir.image" -}}{{ printf "%s:%s" .Values.image.repository .Values.image.tag }}{{- end -}}

{{/* The ingester StatefulSets: one without zones, one per zone with zones. A list of {name, zone}. */}}
{{- define "weir.ingesterSets" -}}
{{- $sets := list -}}
{{- if .Values.zones -}}
{{- range .Values.zones -}}
{{- $sets = append $sets (dict "name" (printf "%s-ingester-%s" (include "weir.fullname" $) .) "zone" .) -}}
{{- end -}}
{{- else -}}
{{- $sets = append $sets (dict "name" (.Values.ingester.statefulSetName | default (printf "%s-ingester" (include "weir.fullname" .))) "zone" "") -}}
{{- end -}}
{{- toJson $sets -}}
{{- end -}}

{{/* DNS suffix of ingester pods: <pod>.<this>:10901 is a hashring endpoint. */}}
{{- define "weir.podDomain" -}}
{{- printf "%s.%s.svc.%s" (include "weir.headless" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* The Thanos hashrings file generated from the ingester replica count (and zones). */}}
{{- define "weir.hashrings" -}}
{{- $endpoints := list -}}
{{- $domain := include "weir.podDomain" . -}}
{{- range (include "weir.ingesterSets" . | fromJsonArray) -}}
{{- $set := . -}}
{{- range $i := until (int $.Values.ingester.replicas) -}}
{{- $addr := printf "%s-%d.%s:10901" $set.name $i $domain -}}
{{- if $set.zone -}}
{{- $endpoints = append $endpoints (dict "address" $addr "az" $set.zone) -}}
{{- else -}}
{{- $endpoints = append $endpoints $addr -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- list (dict "hashring" "default" "algorithm" .Values.hashringAlgorithm "endpoints" $endpoints) | toPrettyJson -}}
{{- end -}}

{{/* Checks run by every template that needs them: fail early with a clear message. */}}
{{- define "weir.validate" -}}
{{- if not (has .Values.membership.mode (list "file" "memberlist")) -}}
{{- fail (printf "membership.mode=%q: want \"file\" or \"memberlist\"" .Values.membership.mode) -}}
{{- end -}}
{{- if and (eq .Values.membership.mode "memberlist") (not .Values.membership.deadTimeout) -}}
{{- fail "membership.deadTimeout must be set with membership.mode=memberlist (e.g. 5m)" -}}
{{- end -}}
{{- $rf := int .Values.replicationFactor -}}
{{- if lt $rf 1 -}}{{- fail "replicationFactor must be at least 1" -}}{{- end -}}
{{- if .Values.zones -}}
{{- if lt (len .Values.zones) $rf -}}
{{- fail (printf "replicationFactor=%d needs at least that many zones, got %d" $rf (len .Values.zones)) -}}
{{- end -}}
{{- else if lt (int .Values.ingester.replicas) $rf -}}
{{- fail (printf "replicationFactor=%d needs at least that many ingester replicas, got %d" $rf (int .Values.ingester.replicas)) -}}
{{- end -}}
{{- if not (has .Values.hashringAlgorithm (list "ketama" "hashmod")) -}}
{{- fail "hashringAlgorithm: want ketama or hashmod" -}}
{{- end -}}
{{- if and .Values.zones .Values.ingester.statefulSetName -}}
{{- fail "ingester.statefulSetName names the one StatefulSet of a ring without zones; with zones there is one per zone" -}}
{{- end -}}
{{- end -}}

{{/* Flags shared by routers and ingesters. */}}
{{- define "weir.commonArgs" -}}
- receive
- --log.level={{ .Values.logLevel }}
- --log.format={{ .Values.logFormat }}
- --http-address=0.0.0.0:10902
- --grpc-address=0.0.0.0:10901
- --remote-write.address=0.0.0.0:19291
{{- if eq .Values.membership.mode "memberlist" }}
- --ring.membership=memberlist
- --memberlist.join={{ include "weir.headless" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:7946
- --memberlist.node-name=$(POD_NAME)
- --memberlist.bind-address=0.0.0.0:7946
- --memberlist.advertise-address=$(POD_IP):7946
- --memberlist.dead-timeout={{ .Values.membership.deadTimeout }}
{{- with .Values.membership.leaveTimeout }}
- --memberlist.leave-timeout={{ . }}
{{- end }}
{{- with .Values.membership.deadNodeReclaimTime }}
- --memberlist.dead-node-reclaim-time={{ . }}
{{- end }}
{{- if eq (toString .Values.membership.leaveOnShutdown) "false" }}
- --memberlist.leave-on-shutdown=false
{{- end }}
{{- with .Values.membership.secretKeySecret.name }}
- --memberlist.secret-key-file=/etc/weir/memberlist/{{ $.Values.membership.secretKeySecret.key }}
{{- end }}
{{- else }}
- --receive.hashrings-file=/etc/weir/hashrings/hashrings.json
- --receive.hashrings-algorithm={{ .Values.hashringAlgorithm }}
{{- end }}
- --receive.replication-factor={{ int .Values.replicationFactor }}
- --receive.forward-timeout={{ .Values.forwardTimeout }}
- --receive.tenant-header={{ .Values.tenantHeader }}
- --receive.default-tenant-id={{ .Values.defaultTenantID }}
- --receive.tenant-label-name={{ .Values.tenantLabelName }}
- --receive.limits.max-series-per-request={{ int .Values.limits.maxSeriesPerRequest }}
- --receive.limits.max-labels-per-series={{ int .Values.limits.maxLabelsPerSeries }}
- --receive.limits.max-label-name-length={{ int .Values.limits.maxLabelNameLength }}
- --receive.limits.max-label-value-length={{ int .Values.limits.maxLabelValueLength }}
{{- if .Values.tenantLimits.config }}
- --receive.limits-config-file=/etc/weir/limits/limits.yaml
- --receive.limits-config-reload-timer={{ .Values.tenantLimits.reloadTimer }}
{{- end }}
{{- end -}}

{{/* Routers sharing each tenant's ingestion rate. */}}
{{- define "weir.limitRouters" -}}
{{- if .Values.tenantLimits.routers -}}
{{ int .Values.tenantLimits.routers }}
{{- else if .Values.router.autoscaling.enabled -}}
{{ int .Values.router.autoscaling.minReplicas }}
{{- else -}}
{{ int .Values.router.replicas }}
{{- end -}}
{{- end -}}

{{- define "weir.tenantLimitsConfigMap" -}}{{ include "weir.fullname" . }}-limits{{- end -}}

{{/* The limits file's volume and mount, when limits are configured. */}}
{{- define "weir.limitsMounts" -}}
{{- if .Values.tenantLimits.config -}}
- name: limits
  mountPath: /etc/weir/limits
  readOnly: true
{{- end }}
{{- end -}}

{{- define "weir.limitsVolumes" -}}
{{- if .Values.tenantLimits.config -}}
- name: limits
  configMap:
    name: {{ include "weir.tenantLimitsConfigMap" . }}
{{- end }}
{{- end -}}

{{- define "weir.ports" -}}
- name: remote-write
  containerPort: 19291
  protocol: TCP
- name: http
  containerPort: 10902
  protocol: TCP
- name: grpc
  containerPort: 10901
  protocol: TCP
{{- if eq .Values.membership.mode "memberlist" }}
- name: gossip
  containerPort: 7946
  protocol: TCP
- name: gossip-udp
  containerPort: 7946
  protocol: UDP
{{- end }}
{{- end -}}

{{/* Downward-API environment: POD_NAME, and POD_IP for the memberlist advertise address. */}}
{{- define "weir.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- if eq .Values.membership.mode "memberlist" }}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- end }}
{{- end -}}

{{/* Membership volume mounts (the hashrings ConfigMap, or the gossip key Secret). */}}
{{- define "weir.membershipMounts" -}}
{{- if eq .Values.membership.mode "memberlist" -}}
{{- if .Values.membership.secretKeySecret.name -}}
- name: memberlist-key
  mountPath: /etc/weir/memberlist
  readOnly: true
{{- end }}
{{- else -}}
- name: hashrings
  mountPath: /etc/weir/hashrings
  readOnly: true
{{- end }}
{{- end -}}

{{- define "weir.membershipVolumes" -}}
{{- if eq .Values.membership.mode "memberlist" -}}
{{- with .Values.membership.secretKeySecret.name -}}
- name: memberlist-key
  secret:
    secretName: {{ . }}
{{- end }}
{{- else -}}
- name: hashrings
  configMap:
    name: {{ include "weir.hashringsConfigMap" . }}
{{- end }}
{{- end -}}

{{- define "weir.probes" -}}
readinessProbe:
  httpGet:
    path: /-/ready
    port: http
    {{- if .Values.security.http.tls }}
    scheme: HTTPS
    {{- end }}
  periodSeconds: 5
  failureThreshold: 3
livenessProbe:
  httpGet:
    path: /-/healthy
    port: http
    {{- if .Values.security.http.tls }}
    scheme: HTTPS
    {{- end }}
  periodSeconds: 10
  failureThreshold: 6
startupProbe:
  httpGet:
    path: /-/healthy
    port: http
    {{- if .Values.security.http.tls }}
    scheme: HTTPS
    {{- end }}
  periodSeconds: 5
  failureThreshold: 60
{{- end -}}

{{/* Thanos Query, Store and Compactor (thanos.*): their own name label, so Weir's selectors,
Services and ServiceMonitor never pick them. Call with (dict "ctx" . "component" "query"). */}}
{{- define "weir.thanosSelectorLabels" -}}
app.kubernetes.io/name: thanos
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "weir.thanosLabels" -}}
{{ include "weir.thanosSelectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Values.thanos.image.tag | quote }}
app.kubernetes.io/part-of: weir
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
{{- end -}}

{{/* Pod fields shared by the Thanos components: the chart's security settings. */}}
{{- define "weir.thanosPodSpec" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* Container fields shared by the Thanos components: image, ports (gRPC unless (dict "grpc" false):
the Compactor serves none), probes, security. Call with (dict "ctx" . "grpc" true). */}}
{{- define "weir.thanosContainer" -}}
image: {{ printf "%s:%s" .ctx.Values.thanos.image.repository .ctx.Values.thanos.image.tag }}
imagePullPolicy: {{ .ctx.Values.thanos.image.pullPolicy }}
ports:
  {{- if .grpc }}
  - name: grpc
    containerPort: 10901
    protocol: TCP
  {{- end }}
  - name: http
    containerPort: 10902
    protocol: TCP
readinessProbe:
  httpGet:
    path: /-/ready
    port: http
livenessProbe:
  httpGet:
    path: /-/healthy
    port: http
securityContext:
  {{- toYaml .ctx.Values.securityContext | nindent 2 }}
{{- end -}}

{{- define "weir.thanosMounts" -}}
volumeMounts:
  - name: data
    mountPath: /data
  - name: objstore
    mountPath: /etc/thanos/objstore
    readOnly: true
{{- end -}}

{{/* Volumes of Store and Compactor: scratch space of (dict "size") and the objstore Secret. */}}
{{- define "weir.thanosVolumes" -}}
volumes:
  - name: data
    emptyDir:
      sizeLimit: {{ .size }}
  - name: objstore
    secret:
      secretName: {{ .ctx.Values.objstore.secretName }}
{{- end -}}
