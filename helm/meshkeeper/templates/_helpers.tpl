{{/* Chart name, truncated to 63 characters (a DNS label). */}}
{{- define "meshkeeper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, unless it already contains the chart name. */}}
{{- define "meshkeeper.fullname" -}}
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

{{- define "meshkeeper.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Deployment's selector: never changes between releases (a selector is immutable). */}}
{{- define "meshkeeper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshkeeper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels every object of the release carries, whatever its component. */}}
{{- define "meshkeeper.commonLabels" -}}
helm.sh/chart: {{ include "meshkeeper.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meshkeeper
{{- end }}

{{/* The agent's objects (Deployment, pods, Service, ConfigMap, RBAC, ServiceAccount, PDB). */}}
{{- define "meshkeeper.labels" -}}
app.kubernetes.io/name: {{ include "meshkeeper.name" . }}
{{ include "meshkeeper.commonLabels" . }}
app.kubernetes.io/component: agent
{{- end }}

{{/* Monitoring objects (ServiceMonitor, PrometheusRule, dashboard ConfigMaps). */}}
{{- define "meshkeeper.monitoringLabels" -}}
app.kubernetes.io/name: {{ include "meshkeeper.name" . }}
{{ include "meshkeeper.commonLabels" . }}
app.kubernetes.io/component: monitoring
{{- end }}

{{/* The helm test Pod: a different name label, so the Service and the PDB never select it. */}}
{{- define "meshkeeper.testLabels" -}}
app.kubernetes.io/name: {{ include "meshkeeper.name" . }}-test
{{ include "meshkeeper.commonLabels" . }}
app.kubernetes.io/component: test
{{- end }}

{{- define "meshkeeper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "meshkeeper.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Lease the replicas elect a leader on (the Role grants access to it alone). */}}
{{- define "meshkeeper.leaseName" -}}
{{- default (include "meshkeeper.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* repository@digest when image.digest is set (it wins over the tag), else repository:tag. */}}
{{- define "meshkeeper.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The one HTTP port: container port, probes, Service target, scrape annotation. */}}
{{- define "meshkeeper.port" -}}
9090
{{- end }}

{{/* Where the ConfigMap is mounted and the agent reads its file. */}}
{{- define "meshkeeper.configPath" -}}
/etc/meshkeeper/config.yaml
{{- end }}

{{/*
The container environment of the agent and of the test Pod: leader election's namespace,
identity and Lease from the chart (the environment wins over the config file), RUST_LOG, then
extraEnv.
*/}}
{{- define "meshkeeper.env" -}}
# The Lease lives in the release namespace (the Role grants it there) ...
- name: MESHKEEPER_LEADER_ELECTION__NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
# ... and each replica holds it under its own pod name.
- name: MESHKEEPER_LEADER_ELECTION__IDENTITY
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: MESHKEEPER_LEADER_ELECTION__LEASE_NAME
  value: {{ include "meshkeeper.leaseName" . | quote }}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
# mimalloc hands freed pages back to the kernel at once instead of keeping them (at 100,000 pods
# about 20 MiB less resident, for about 0.1 CPU-seconds a minute); the image sets it too.
- name: MIMALLOC_PURGE_DELAY
  value: "0"
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
.Values.config as the agent's file. Helm reads values as YAML 1.1, where an unquoted `off` is
the boolean false: `injection.mode: off` would reach the agent as `mode: false` and be
refused. A `false` mode is written as "off" (the schema allows exactly that boolean).
*/}}
{{- define "meshkeeper.configValues" -}}
{{- $c := deepCopy .Values.config }}
{{- range $section := list "injection" "reinjection" "gateway" }}
{{- $s := get $c $section }}
{{- if and (kindIs "map" $s) (hasKey $s "mode") (kindIs "bool" (get $s "mode")) }}
{{- if not (get $s "mode") }}
{{- $_ := set $s "mode" "off" }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $c }}
{{- end }}

{{- /*
The agent's defaults for every key a guard below reads, per profile: what the agent uses when
`config:` leaves the key out. Plain YAML on purpose (no template actions between the define and
its end): agent/tests/chart_schema.rs parses this block and compares every value with
Settings::defaults of agent/src/config/profile.rs.
*/}}
{{- define "meshkeeper.profileDefaults" -}}
asm-onprem:
  http:
    listen: "0.0.0.0:9090"
  leader_election:
    enabled: true
  injection:
    mode: "audit"
    label: "istio-injection=enabled"
  reinjection:
    mode: "audit"
    injector_configmap: "istio-sidecar-injector"
    evict_on_delete: false
  control_plane:
    namespace: "istio-system"
  gateway:
    mode: "manual"
    namespace: "istio-system"
    service: "istio-ingressgateway"
    repair: false
istiod:
  http:
    listen: "0.0.0.0:9090"
  leader_election:
    enabled: true
  injection:
    mode: "audit"
    label: "istio-injection=enabled"
  reinjection:
    mode: "audit"
    injector_configmap: "istio-sidecar-injector"
    evict_on_delete: false
  control_plane:
    namespace: "istio-system"
  gateway:
    mode: "off"
    namespace: "istio-system"
    service: "istio-ingressgateway"
    repair: false
{{- end }}

{{/*
The effective value of every key in meshkeeper.profileDefaults: the config value when set,
else the profile's default. (Not sprig's mergeOverwrite: it never overwrites with false or "".)
*/}}
{{- define "meshkeeper.effectiveConfig" -}}
{{- $user := include "meshkeeper.configValues" . | fromYaml }}
{{- $all := include "meshkeeper.profileDefaults" . | fromYaml }}
{{- $defaults := get $all (default "asm-onprem" $user.profile) }}
{{- $eff := dict }}
{{- range $section, $keys := $defaults }}
{{- $u := get $user $section }}
{{- $s := dict }}
{{- range $k, $v := $keys }}
{{- if and (kindIs "map" $u) (hasKey $u $k) }}
{{- $_ := set $s $k (get $u $k) }}
{{- else }}
{{- $_ := set $s $k $v }}
{{- end }}
{{- end }}
{{- $_ := set $eff $section $s }}
{{- end }}
{{- toYaml $eff }}
{{- end }}

{{/* "config.gateway.namespace is X" or, when unset, "config.gateway.namespace is unset (the istiod profile's default X)". */}}
{{- define "meshkeeper.describeKey" -}}
{{- $section := get .user .section }}
{{- if and (kindIs "map" $section) (hasKey $section .key) }}
{{- printf "config.%s.%s is %v" .section .key (get $section .key) }}
{{- else }}
{{- printf "config.%s.%s is unset (the %s profile's default %v)" .section .key .profile (get (get .eff .section) .key) }}
{{- end }}
{{- end }}

{{/*
Settings that must agree, checked at `helm install/upgrade/template` time instead of failing
(403s, a pod that never turns ready) in the cluster. Every problem is reported at once, each
naming the values and how to fix them. The rbac.* guards apply only with rbac.create (without
it you bring your own RBAC).
*/}}
{{- define "meshkeeper.validate" -}}
{{- $user := include "meshkeeper.configValues" . | fromYaml }}
{{- $eff := include "meshkeeper.effectiveConfig" . | fromYaml }}
{{- $profile := default "asm-onprem" $user.profile }}
{{- $d := dict "user" $user "eff" $eff "profile" $profile }}
{{- $rbac := .Values.rbac }}
{{- $errors := list }}

{{- /* Leader election: the chart owns the Lease's namespace, name and holder identity. */}}
{{- $le := get $user "leader_election" }}
{{- if kindIs "map" $le }}
{{- range $k := list "namespace" "lease_name" "identity" }}
{{- if hasKey $le $k }}
{{- $errors = append $errors (printf "config.leader_election.%s is set, but the chart sets it through the environment (MESHKEEPER_LEADER_ELECTION__%s, which wins over the file): the release namespace, leaderElection.leaseName and the pod name. Remove config.leader_election.%s (use leaderElection.leaseName for the Lease's name)." $k (upper $k) $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not $eff.leader_election.enabled) }}
{{- $errors = append $errors (printf "replicaCount is %d but config.leader_election.enabled is false: every replica would act on its own (duplicate writes, replicas undoing each other). Set replicaCount=1, or remove config.leader_election.enabled (it defaults to true)." (int .Values.replicaCount)) }}
{{- end }}

{{- /* The HTTP port: probes, the Service and the scrape annotation use the container port. */}}
{{- $listen := toString $eff.http.listen }}
{{- $host := "" }}
{{- $port := "" }}
{{- if hasPrefix "[" $listen }}
{{- $host = regexReplaceAll "^\\[(.*)\\]:.*$" $listen "${1}" }}
{{- $port = regexReplaceAll "^\\[.*\\]:" $listen "" }}
{{- else }}
{{- $host = regexReplaceAll ":[^:]*$" $listen "" }}
{{- $port = regexReplaceAll "^.*:" $listen "" }}
{{- end }}
{{- if ne $port (include "meshkeeper.port" .) }}
{{- $errors = append $errors (printf "config.http.listen is %s, but the container port, the liveness/readiness probes and the Service's targetPort are %s: the pod would never turn ready. Set config.http.listen to 0.0.0.0:%s (or remove it)." $listen (include "meshkeeper.port" .) (include "meshkeeper.port" .)) }}
{{- else if not (has $host (list "0.0.0.0" "::")) }}
{{- $errors = append $errors (printf "config.http.listen is %s: the kubelet's probes and Prometheus connect to the pod IP, so the agent must listen on every address. Set config.http.listen to 0.0.0.0:%s or [::]:%s (or remove it)." $listen $port $port) }}
{{- end }}

{{- if $rbac.create }}
{{- /* Injection policy. */}}
{{- if and (eq (toString $eff.injection.mode) "enforce") (not $rbac.injectionEnforce) }}
{{- $errors = append $errors "config.injection.mode is enforce, but rbac.injectionEnforce is false: every label repair would be refused (403, no patch on namespaces). Set rbac.injectionEnforce=true, or config.injection.mode=audit to report only." }}
{{- end }}

{{- /* Gateway pin repair: one named Service in one namespace. */}}
{{- if and $eff.gateway.repair (ne (toString $eff.gateway.mode) "off") }}
{{- if not $rbac.gatewayRepair.enabled }}
{{- $errors = append $errors (printf "config.gateway.repair is true (gateway mode %s), but rbac.gatewayRepair.enabled is false: every repair of the gateway Service would be refused (403). Set rbac.gatewayRepair.enabled=true, or config.gateway.repair=false to report drift only." $eff.gateway.mode) }}
{{- else }}
{{- if ne (toString $eff.gateway.namespace) (toString $rbac.gatewayRepair.namespace) }}
{{- $errors = append $errors (printf "%s but rbac.gatewayRepair.namespace is %s: the Role would grant the patch in another namespace than the agent repairs in. Set both to the same namespace." (include "meshkeeper.describeKey" (merge (dict "section" "gateway" "key" "namespace") $d)) $rbac.gatewayRepair.namespace) }}
{{- end }}
{{- if ne (toString $eff.gateway.service) (toString $rbac.gatewayRepair.service) }}
{{- $errors = append $errors (printf "%s but rbac.gatewayRepair.service is %s: the Role would grant the patch on another Service than the agent repairs. Set both to the same name." (include "meshkeeper.describeKey" (merge (dict "section" "gateway" "key" "service") $d)) $rbac.gatewayRepair.service) }}
{{- end }}
{{- end }}
{{- end }}

{{- /* Re-injection: restarts and evictions, and the injector's ConfigMap it reads by name. */}}
{{- $reinjection := toString $eff.reinjection.mode }}
{{- if and (eq $reinjection "enforce") (not $rbac.reinjection.enforce) }}
{{- $errors = append $errors "config.reinjection.mode is enforce, but rbac.reinjection.enforce is false: every rolling restart would be refused (403, no patch on deployments, statefulsets, daemonsets). Set rbac.reinjection.enforce=true, or config.reinjection.mode=audit to report only." }}
{{- end }}
{{- if and (eq $reinjection "enforce") $eff.reinjection.evict_on_delete (not $rbac.reinjection.evict) }}
{{- $errors = append $errors "config.reinjection.evict_on_delete is true (with config.reinjection.mode enforce), but rbac.reinjection.evict is false: every eviction of an OnDelete workload's pod would be refused (403, no create on pods/eviction). Set rbac.reinjection.evict=true, or config.reinjection.evict_on_delete=false." }}
{{- end }}
{{- if ne $reinjection "off" }}
{{- if ne (toString $eff.control_plane.namespace) (toString $rbac.reinjection.namespace) }}
{{- $errors = append $errors (printf "%s but rbac.reinjection.namespace is %s: the agent reads the injector's ConfigMap in the control-plane namespace, and the Role grants it in %s only (its watch would be refused). Set both to the same namespace." (include "meshkeeper.describeKey" (merge (dict "section" "control_plane" "key" "namespace") $d)) $rbac.reinjection.namespace $rbac.reinjection.namespace) }}
{{- end }}
{{- $label := toString $eff.injection.label }}
{{- $cm := toString $eff.reinjection.injector_configmap }}
{{- $wanted := $cm }}
{{- if hasPrefix "istio.io/rev=" $label }}
{{- $wanted = printf "%s-%s" $cm (trimPrefix "istio.io/rev=" $label) }}
{{- end }}
{{- if ne $wanted (toString $rbac.reinjection.injectorConfigMap) }}
{{- $why := "" }}
{{- if ne $wanted $cm }}
{{- $why = printf " (with config.injection.label %s the agent reads %s-<revision>)" $label $cm }}
{{- end }}
{{- $errors = append $errors (printf "The agent reads the injector's ConfigMap %s%s, but rbac.reinjection.injectorConfigMap is %s: the Role grants another ConfigMap (its watch would be refused). Set rbac.reinjection.injectorConfigMap=%s, or config.reinjection.injector_configmap and config.injection.label to match it." $wanted $why $rbac.reinjection.injectorConfigMap $wanted) }}
{{- end }}
{{- end }}
{{- end }}

{{- if $errors }}
{{- fail (printf "\n\nmeshkeeper: %d setting(s) do not agree:\n  - %s\n" (len $errors) (join "\n  - " $errors)) }}
{{- end }}
{{- end }}

{{/* A Prometheus duration (1h30m, 15s, 500ms) in milliseconds, for the scrape timeout guard. */}}
{{- define "meshkeeper.durationMs" -}}
{{- $total := 0.0 }}
{{- range $part := regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h|d|w|y)" (toString .) -1 }}
{{- $unit := regexFind "(ms|s|m|h|d|w|y)$" $part }}
{{- $n := float64 (trimSuffix $unit $part) }}
{{- $mult := get (dict "ms" 1.0 "s" 1000.0 "m" 60000.0 "h" 3600000.0 "d" 86400000.0 "w" 604800000.0 "y" 31536000000.0) $unit }}
{{- $total = addf $total (mulf $n $mult) }}
{{- end }}
{{- $total }}
{{- end }}
