{{- define "kreload.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kreload.fullname" -}}
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

{{- define "kreload.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kreload.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kreload.labels" -}}
{{ include "kreload.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.reloader.matchLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "kreload.serviceAccountName" -}}
{{- if .Values.reloader.serviceAccount.create -}}
{{- default (include "kreload.fullname" .) .Values.reloader.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.reloader.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kreload.image" -}}
{{- $i := .Values.image -}}
{{- if $i.digest -}}
{{- printf "%s@%s" $i.repository $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository (default .Chart.AppVersion (toString $i.tag)) -}}
{{- end -}}
{{- end -}}

{{/* A comma-separated string or a list, as a JSON list of trimmed, non-empty names.
     (include returns a string, hence JSON; callers use fromJsonArray.) */}}
{{- define "kreload.list" -}}
{{- $out := list -}}
{{- $in := . -}}
{{- if kindIs "string" $in -}}{{- $in = splitList "," $in -}}{{- end -}}
{{- range $in -}}
{{- $v := trim (toString .) -}}
{{- if $v -}}{{- $out = append $out $v -}}{{- end -}}
{{- end -}}
{{- toJson (uniq $out) -}}
{{- end -}}

{{/* The namespaces of namespaced mode; empty when watching globally. */}}
{{- define "kreload.namespaces" -}}
{{- if .Values.reloader.watchGlobally -}}
[]
{{- else -}}
{{- $ns := include "kreload.list" .Values.reloader.namespaces | fromJsonArray -}}
{{- if not $ns -}}
{{- fail "reloader.watchGlobally=false needs reloader.namespaces (the namespaces to act in): kreload never acts in its own namespace, so Reloader's \"watch only the release namespace\" has no meaning here" -}}
{{- end -}}
{{- if has .Release.Namespace $ns -}}
{{- fail (printf "reloader.namespaces must not hold kreload's own namespace %q: kreload never acts there" .Release.Namespace) -}}
{{- end -}}
{{- toJson $ns -}}
{{- end -}}
{{- end -}}

{{- define "kreload.ignoredSources" -}}
{{- $out := list -}}
{{- if .Values.reloader.ignoreConfigMaps }}{{ $out = append $out "configmaps" }}{{ end -}}
{{- if .Values.reloader.ignoreSecrets }}{{ $out = append $out "secrets" }}{{ end -}}
{{- if eq (len $out) 2 -}}
{{- fail "reloader.ignoreSecrets and reloader.ignoreConfigMaps are both true: kreload would have nothing to watch" -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{- define "kreload.ignoredWorkloads" -}}
{{- $out := list -}}
{{- if .Values.reloader.ignoreCronJobs }}{{ $out = append $out "cronjobs" }}{{ end -}}
{{- if .Values.reloader.ignoreJobs }}{{ $out = append $out "jobs" }}{{ end -}}
{{- toJson $out -}}
{{- end -}}

{{- define "kreload.reloadStrategy" -}}
{{- $s := .Values.reloader.reloadStrategy | default "default" -}}
{{- if eq $s "default" }}env-vars{{ else }}{{ $s }}{{ end -}}
{{- end -}}

{{/* The serving certificate's Secret. */}}
{{- define "kreload.tlsSecret" -}}
{{- if .Values.certManager.enabled -}}
{{- printf "%s-serving-tls" (include "kreload.fullname" .) -}}
{{- else -}}
{{- required "tls.secretName is required when certManager.enabled=false" .Values.tls.secretName -}}
{{- end -}}
{{- end -}}

{{- define "kreload.terminationGrace" -}}
{{- add (int .Values.kreload.preStopSleepSeconds) (int .Values.kreload.shutdownGraceSeconds) 5 -}}
{{- end -}}

{{/* The access kreload needs where it acts: cluster-wide in a ClusterRole, or per
     namespace in a Role (namespaced mode). */}}
{{- define "kreload.workloadRules" -}}
# Read one source at a time to confirm an admitted write and hash it; never list or watch.
- apiGroups: [""]
  resources: ["configmaps", "secrets"]
  verbs: ["get"]
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "patch"]
# A Job is reloaded by deleting it and creating a copy.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "patch", "delete", "create"]
- apiGroups: ["argoproj.io"]
  resources: ["rollouts"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.reloader.enableCSIIntegration }}
# CSI Secrets Store: list a namespace's statuses to confirm a rotation and resync, get a
# class for its ignore and match annotations (manifests/components/csi/rbac.yaml).
- apiGroups: ["secrets-store.csi.x-k8s.io"]
  resources: ["secretproviderclasspodstatuses"]
  verbs: ["list"]
- apiGroups: ["secrets-store.csi.x-k8s.io"]
  resources: ["secretproviderclasses"]
  verbs: ["get"]
{{- end }}
{{- end -}}
