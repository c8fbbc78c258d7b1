{{/* Resource name: resourceName, else "ztunnel" (as upstream's chart). */}}
{{- define "ztunnel.name" -}}{{ .Values.resourceName | default "ztunnel" }}{{- end -}}

{{/* Labels on every resource. */}}
{{- define "ztunnel.labels" -}}
app.kubernetes.io/name: ztunnel
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/part-of: istio
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- with .Values.revision }}
istio.io/rev: {{ . | quote }}
{{- end }}
{{- with .Values.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The container image: image when it holds a "/", else hub/image:tag[-variant]. */}}
{{- define "ztunnel.image" -}}
{{- if contains "/" .Values.image -}}
{{ .Values.image }}
{{- else -}}
{{- $name := printf "%s:%s%s" (.Values.image | default "ztunnel-c") .Values.tag (ternary (printf "-%s" .Values.variant) "" (ne (.Values.variant | default "") "")) -}}
{{ ternary (printf "%s/%s" .Values.hub $name) $name (ne (.Values.hub | default "") "") }}
{{- end -}}
{{- end -}}

{{/* istiod's address for XDS_ADDRESS/CA_ADDRESS when not given: istiod[-<revision>].<ns>.svc:15012 */}}
{{- define "ztunnel.istiod" -}}
istiod{{ with .Values.revision }}-{{ . }}{{ end }}.{{ .Values.istioNamespace }}.svc:15012
{{- end -}}

{{/* Checks the agent's own values; fails the rendering with what is wrong. */}}
{{- define "ztunnel.validate" -}}
{{- $redirect := toString .Values.redirect -}}
{{- if not (has $redirect (list "nftables" "ebpf" "none")) -}}
{{- fail (printf "values: redirect is %q; it must be nftables, ebpf or none" $redirect) -}}
{{- end -}}
{{- if and (eq $redirect "none") .Values.cni.install -}}
{{- fail "values: redirect none means istio-cni captures and enrolls the pods; cni.install=true would chain ztunnel-cni as well: set one of them" -}}
{{- end -}}
{{- if not (has (toString .Values.resourceScope) (list "all" "cluster" "namespace")) -}}
{{- fail (printf "values: resourceScope is %q; it must be all, cluster or namespace" (toString .Values.resourceScope)) -}}
{{- end -}}
{{- end -}}
