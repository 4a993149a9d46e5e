// Package deploy holds the Kubernetes manifests (kustomize bases, components
// and examples) of the central and the agent sidecar; its Go test renders
// each kustomization and checks the objects strictly against client-go's
// scheme and against the programs' flags and ports.
//
// It has no Go code of its own; the test may import the module's packages
// (central/authz to validate embedded configuration, images for the image
// names and user), nothing may import it.
package deploy
