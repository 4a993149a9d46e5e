package auth_test

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/internal/tstest/testclock"
)

const (
	audience     = "kubernaut-datastorage"
	centralToken = "central-own-credential"
	reviewPath   = "/apis/authentication.k8s.io/v1/tokenreviews"
)

// testPeer is the network address tests authenticate from (TEST-NET-1).
var testPeer = netip.MustParseAddr("192.0.2.10")

// fakeAPI is an API server that speaks authentication.k8s.io/v1 TokenReview
// JSON over TLS. By default it authenticates the tokens in users, for the
// audiences the request asks for.
type fakeAPI struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	users    map[string]authenticationv1.UserInfo
	requests []authenticationv1.TokenReviewSpec
	bearers  []string
	// contentTypes are the requests' Content-Type headers.
	contentTypes []string
	// answer, when set, replaces the default answer; it returns an HTTP
	// status and, for 201, the TokenReview status to send.
	answer func(spec authenticationv1.TokenReviewSpec) (int, authenticationv1.TokenReviewStatus)
	// gate, when set, holds every request until it is closed.
	gate chan struct{}
	// latency, when set, is how long each answer takes, like a real API
	// server's round trip.
	latency func() time.Duration
}

func newFakeAPI(t testing.TB) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, users: map[string]authenticationv1.UserInfo{}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) addUser(token, username, uid string, groups ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[token] = authenticationv1.UserInfo{Username: username, UID: uid, Groups: groups}
}

func (f *fakeAPI) setAnswer(fn func(spec authenticationv1.TokenReviewSpec) (int, authenticationv1.TokenReviewStatus)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = fn
}

// setLatency makes every answer take between lo and hi.
func (f *fakeAPI) setLatency(lo, hi time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency = func() time.Duration { return lo + rand.N(hi-lo+1) }
}

func (f *fakeAPI) hold() chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = make(chan struct{})
	return f.gate
}

func (f *fakeAPI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeAPI) lastRequest() (authenticationv1.TokenReviewSpec, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(f.t, f.requests)
	return f.requests[len(f.requests)-1], f.bearers[len(f.bearers)-1]
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != reviewPath {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var tr authenticationv1.TokenReview
	// client-go sends protobuf by default and JSON when configured to; the
	// universal deserializer reads either into the k8s.io/api type, by the
	// apiVersion/kind the body declares.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, &tr)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if gvk.GroupVersion() != authenticationv1.SchemeGroupVersion || gvk.Kind != "TokenReview" {
		http.Error(w, "unexpected "+gvk.String(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.contentTypes = append(f.contentTypes, r.Header.Get("Content-Type"))
	f.mu.Unlock()
	f.mu.Lock()
	f.requests = append(f.requests, tr.Spec)
	f.bearers = append(f.bearers, r.Header.Get("Authorization"))
	gate, answer, latency := f.gate, f.answer, f.latency
	user, known := f.users[tr.Spec.Token]
	f.mu.Unlock()

	if latency != nil {
		select {
		case <-time.After(latency()):
		case <-r.Context().Done():
			return
		}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			// The client gave up: send nothing rather than an empty 200,
			// which a client still reading could take for an answer.
			panic(http.ErrAbortHandler)
		}
	}

	code, status := http.StatusCreated, authenticationv1.TokenReviewStatus{}
	if answer != nil {
		code, status = answer(tr.Spec)
	} else if known {
		status = authenticationv1.TokenReviewStatus{Authenticated: true, User: user, Audiences: tr.Spec.Audiences}
	} else {
		status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
	}
	if code != http.StatusCreated {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(metav1.Status{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
			Status:   metav1.StatusFailure, Code: int32(code), Message: http.StatusText(code),
		})
		return
	}
	tr.Status = status
	tr.Spec.Token = "" // the real API server does not echo the token either
	tr.APIVersion, tr.Kind = "authentication.k8s.io/v1", "TokenReview"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(tr)
}

// restConfig is how the central reaches the fake API server: its CA, and the
// central's own bearer token.
func (f *fakeAPI) restConfig() *rest.Config {
	return &rest.Config{
		Host:        f.srv.URL,
		BearerToken: centralToken,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}),
		},
	}
}

func (f *fakeAPI) clientset() kubernetes.Interface {
	f.t.Helper()
	return f.clientsetFor(f.restConfig())
}

func (f *fakeAPI) clientsetFor(cfg *rest.Config) kubernetes.Interface {
	f.t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(f.t, err)
	return cs
}

// writeKubeconfig writes a kubeconfig file for the fake API server.
func (f *fakeAPI) writeKubeconfig() string {
	f.t.Helper()
	rc := f.restConfig()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["fake"] = &clientcmdapi.Cluster{Server: rc.Host, CertificateAuthorityData: rc.CAData}
	cfg.AuthInfos["central"] = &clientcmdapi.AuthInfo{Token: centralToken}
	cfg.Contexts["fake"] = &clientcmdapi.Context{Cluster: "fake", AuthInfo: "central"}
	cfg.CurrentContext = "fake"
	path := filepath.Join(f.t.TempDir(), "kubeconfig")
	require.NoError(f.t, clientcmd.WriteToFile(*cfg, path))
	return path
}

func newClock() *testclock.Clock { return testclock.New(time.Date(2025, 10, 6, 12, 0, 0, 0, time.UTC)) }

// newReviewer builds a TokenReview against f with a fresh metrics set and an
// injected clock; mutate adjusts the config.
func newReviewer(t *testing.T, f *fakeAPI, mutate func(*auth.TokenReviewConfig)) (*auth.TokenReview, *metrics.Set, *testclock.Clock) {
	t.Helper()
	set, clk := metrics.NewSet(), newClock()
	rc := f.restConfig()
	rc.QPS, rc.Burst = auth.ClientQPS, auth.ClientBurst // as NewClientset sets them
	cfg := auth.TokenReviewConfig{Client: f.clientsetFor(rc), Audience: audience, Metrics: set, Now: clk.Now}
	if mutate != nil {
		mutate(&cfg)
	}
	tr, err := auth.NewTokenReview(cfg)
	require.NoError(t, err)
	return tr, set, clk
}

func counter(set *metrics.Set, name string) uint64 {
	return set.GetOrCreateCounter(name).Get()
}
