// Package deploy holds the Kubernetes manifests of the central and the agent
// sidecar: the Helm chart (helm/datastorage, with a controller chart using its
// agent templates in helm/examples) and the kustomize bases, components and
// examples. Its Go test renders each kustomization (krusty) and the chart with
// each option (Helm's SDK), checks the objects strictly against client-go's
// scheme and against the programs' flags and ports, and compares the chart
// with the kustomize manifests.
//
// It has no Go code of its own; the test may import the module's packages
// (central/authz to validate embedded configuration, images for the image
// names and user), nothing may import it.
package deploy
