{{/* Flags of the security settings (docs/security.md), shared by routers and ingesters. */}}
{{- define "weir.securityArgs" -}}
{{- with .Values.security.remoteWrite }}
{{- if .tlsSecret }}
- --remote-write.server-tls-cert=/etc/weir/remote-write-tls/tls.crt
- --remote-write.server-tls-key=/etc/weir/remote-write-tls/tls.key
- --remote-write.server-tls-min-version={{ .minVersion }}
{{- if .clientCA }}
- --remote-write.server-tls-client-ca=/etc/weir/remote-write-tls/ca.crt
{{- end }}
{{- end }}
{{- with .tenantCertificateField }}
- --receive.tenant-certificate-field={{ . }}
{{- end }}
{{- if .credentialsSecret.name }}
- --receive.credentials-file=/etc/weir/credentials/{{ .credentialsSecret.key }}
{{- end }}
{{- end }}
{{- with .Values.security.grpc.tlsSecret }}
- --grpc-server-tls-cert=/etc/weir/grpc-tls/tls.crt
- --grpc-server-tls-key=/etc/weir/grpc-tls/tls.key
- --grpc-server-tls-client-ca=/etc/weir/grpc-tls/ca.crt
- --grpc-server-tls-min-version={{ $.Values.security.grpc.minVersion }}
- --remote-write.client-tls-cert=/etc/weir/grpc-tls/tls.crt
- --remote-write.client-tls-key=/etc/weir/grpc-tls/tls.key
- --remote-write.client-tls-ca=/etc/weir/grpc-tls/ca.crt
{{- end }}
{{- with .Values.security.http.webConfigSecret.name }}
- --http.config=/etc/weir/web/{{ $.Values.security.http.webConfigSecret.key }}
{{- end }}
{{- end -}}

{{- define "weir.securityMounts" -}}
{{- if .Values.security.remoteWrite.tlsSecret }}
- name: remote-write-tls
  mountPath: /etc/weir/remote-write-tls
  readOnly: true
{{- end }}
{{- if .Values.security.remoteWrite.credentialsSecret.name }}
- name: credentials
  mountPath: /etc/weir/credentials
  readOnly: true
{{- end }}
{{- if .Values.security.grpc.tlsSecret }}
- name: grpc-tls
  mountPath: /etc/weir/grpc-tls
  readOnly: true
{{- end }}
{{- if .Values.security.http.webConfigSecret.name }}
- name: web-config
  mountPath: /etc/weir/web
  readOnly: true
{{- end }}
{{- end -}}

{{- define "weir.securityVolumes" -}}
{{- with .Values.security.remoteWrite.tlsSecret }}
- name: remote-write-tls
  secret:
    secretName: {{ . }}
{{- end }}
{{- with .Values.security.remoteWrite.credentialsSecret.name }}
- name: credentials
  secret:
    secretName: {{ . }}
{{- end }}
{{- with .Values.security.grpc.tlsSecret }}
- name: grpc-tls
  secret:
    secretName: {{ . }}
{{- end }}
{{- with .Values.security.http.webConfigSecret.name }}
- name: web-config
  secret:
    secretName: {{ . }}
{{- end }}
{{- end -}}

{{/* Checks of the security settings. */}}
{{- define "weir.validateSecurity" -}}
{{- with .Values.security.remoteWrite }}
{{- if and .tenantCertificateField (not (and .tlsSecret .clientCA)) -}}
{{- fail "security.remoteWrite.tenantCertificateField needs security.remoteWrite.tlsSecret and clientCA: true" -}}
{{- end -}}
{{- if and .clientCA (not .tlsSecret) -}}
{{- fail "security.remoteWrite.clientCA needs security.remoteWrite.tlsSecret" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.security.certManager.enabled (not (or .Values.security.remoteWrite.tlsSecret .Values.security.grpc.tlsSecret)) -}}
{{- fail "security.certManager.enabled needs security.remoteWrite.tlsSecret or security.grpc.tlsSecret (the Secrets it writes)" -}}
{{- end -}}
{{- end -}}
