package auth

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Client-side rate limits of the clientset NewClientset builds. client-go's
// defaults (5 QPS, burst 10) would throttle TokenReviews on a cache-cold start.
const (
	ClientQPS   = 100
	ClientBurst = 200
)

// NewClientset builds a clientset from the kubeconfig at kubeconfigPath, or
// from the in-cluster service-account configuration when it is "". Its
// client-side limit is raised to ClientQPS/ClientBurst.
func NewClientset(kubeconfigPath string) (kubernetes.Interface, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfigPath == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: kubernetes client config: %w", err)
	}
	cfg.QPS = ClientQPS
	cfg.Burst = ClientBurst
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("auth: kubernetes clientset: %w", err)
	}
	return cs, nil
}
