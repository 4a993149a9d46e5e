{{/*
The agent sidecar, for the controllers' charts (docs/deploy.md, "Helm: the agent sidecar"). A controller
chart declares this chart as a dependency with central.enabled=false, and in its pod template includes,
each with the agent values (the dependency's .Values.datastorage.agent, this chart's defaults merged
with the controller's overrides):

  metadata:
    labels:
      {{- include "datastorage.agentSidecar.podLabels" .Values.datastorage.agent | nindent 8 }}
  spec:
    terminationGracePeriodSeconds: {{ int64 .Values.datastorage.agent.terminationGracePeriodSeconds }}
    initContainers:
    {{- include "datastorage.agentSidecar" .Values.datastorage.agent | nindent 4 }}
    volumes:
    {{- include "datastorage.agentSidecar.volumes" .Values.datastorage.agent | nindent 4 }}

It renders what deploy/sidecar adds (deploy_test.go checks that they are equal field for field).
*/}}

{{/* The pod label the PodMonitor selects the agents by. */}}
{{- define "datastorage.agentSidecar.podLabels" -}}
kubernaut.io/datastorage-agent: enabled
{{- end -}}

{{/* The native sidecar: one initContainers item with restartPolicy Always (Kubernetes 1.29+). */}}
{{- define "datastorage.agentSidecar" -}}
- name: datastorage-agent
  image: {{ .image.repository }}:{{ .image.tag }}
  imagePullPolicy: {{ .image.pullPolicy }}
  restartPolicy: Always
  args:
  - --listen=127.0.0.1:18080
  - --metrics-listen=:19090
  - --central-url={{ .centralURL }}
  - --central-ca-file=/etc/datastorage/central-ca/ca.crt
  - --token-file=/var/run/secrets/datastorage/token
  - --data-dir=/var/lib/datastorage-agent
  # Well under the buffer volume's sizeLimit: the store needs room for compaction, and a volume over
  # its sizeLimit gets the whole pod evicted.
  - --max-buffer-bytes={{ int64 .maxBufferBytes }}
  - --batch-max-records={{ int64 .batchMaxRecords }}
  - --linger={{ .linger }}
  # Less than terminationGracePeriodSeconds, which the controller's own shutdown also uses.
  - --shutdown-grace={{ .shutdownGrace }}
  - --log-level={{ .logLevel }}
  env:
  {{- if .clientCertificateSecret }}
  - name: AGENT_CLIENT_CERT_FILE
    value: /etc/datastorage/client-tls/tls.crt
  - name: AGENT_CLIENT_KEY_FILE
    value: /etc/datastorage/client-tls/tls.key
  {{- end }}
  # A soft heap target under the memory limit: Go collects harder before the kernel kills.
  - name: GOMEMLIMIT
    value: {{ .goMemLimit }}
  ports:
  # 18080 listens on 127.0.0.1 only (for the controller); 19090 on all interfaces serves /healthz,
  # /readyz and /metrics, so the kubelet probes it.
  - name: agent-api
    containerPort: 18080
    protocol: TCP
  - name: agent-metrics
    containerPort: 19090
    protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: agent-metrics
    periodSeconds: 1
    failureThreshold: 60
  readinessProbe:
    httpGet:
      path: /readyz
      port: agent-metrics
    periodSeconds: 5
    failureThreshold: 3
  livenessProbe:
    httpGet:
      path: /healthz
      port: agent-metrics
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 6
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: [ALL]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
  {{- if .clientCertificateSecret }}
  - name: datastorage-agent-client-tls
    mountPath: /etc/datastorage/client-tls
    readOnly: true
  {{- end }}
  - name: datastorage-token
    mountPath: /var/run/secrets/datastorage
    readOnly: true
  - name: datastorage-agent-buffer
    mountPath: /var/lib/datastorage-agent
  - name: datastorage-central-ca
    mountPath: /etc/datastorage/central-ca
    readOnly: true
{{- end -}}

{{/* The sidecar's volumes: volumes items. */}}
{{- define "datastorage.agentSidecar.volumes" -}}
{{- if .clientCertificateSecret }}
- name: datastorage-agent-client-tls
  secret:
    secretName: {{ .clientCertificateSecret }}
{{ end -}}
- name: datastorage-token
  projected:
    sources:
    - serviceAccountToken:
        # Must equal the central's --token-audience.
        audience: {{ .tokenAudience }}
        expirationSeconds: 3600
        path: token
- name: datastorage-agent-buffer
  emptyDir:
    sizeLimit: {{ .bufferSizeLimit }}
- name: datastorage-central-ca
  configMap:
    name: {{ .centralCAConfigMap }}
{{- end -}}
