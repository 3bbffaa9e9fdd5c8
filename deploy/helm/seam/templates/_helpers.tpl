{{- define "seam.labels" -}}
app.kubernetes.io/name: seam
app.kubernetes.io/component: agent
{{- end -}}
