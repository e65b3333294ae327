// Checks of charts/kreload and manifests/ (see main.go). A module of its own so that it
// never changes the key of hack/helm.sh's cached build.
module kreload.dev/hack/helm/chartcheck

go 1.26.0

require sigs.k8s.io/yaml v1.6.0

require go.yaml.in/yaml/v2 v2.4.2 // indirect
