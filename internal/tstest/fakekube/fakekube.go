// Package fakekube is a fake Kubernetes API server for tests: an httptest
// TLS server that speaks the two reviews the central makes,
// authentication.k8s.io/v1 TokenReview and authorization.k8s.io/v1
// SubjectAccessReview, in the JSON (or protobuf) client-go sends, and a
// kubeconfig that points at it. Its SubjectAccessReviews are decided by the
// grants a test gives, as RBAC would decide them: the user or one of its
// groups holds the exact attributes asked for.
package fakekube

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The API paths it serves.
const (
	TokenReviewPath         = "/apis/authentication.k8s.io/v1/tokenreviews"
	SubjectAccessReviewPath = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
)

// CentralToken is the credential the central presents to the API server.
const CentralToken = "central-own-credential"

// Server is the fake API server. Its zero value is not usable: call New.
type Server struct {
	t   testing.TB
	srv *httptest.Server

	mu     sync.Mutex
	users  map[string]authenticationv1.UserInfo // token → user
	grants map[string][]authorizationv1.ResourceAttributes
	sars   []authorizationv1.SubjectAccessReviewSpec
	gate   chan struct{}
	status int // when not 0, every review answers this status
}

// New starts a Server, closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, users: map[string]authenticationv1.UserInfo{}, grants: map[string][]authorizationv1.ResourceAttributes{}}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// AddUser makes TokenReview authenticate token as username, for whatever
// audiences the review asks for.
func (s *Server) AddUser(token, username, uid string, groups ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[token] = authenticationv1.UserInfo{Username: username, UID: uid, Groups: groups}
}

// ServiceAccountToken returns a new projected-token-shaped JWT (the central
// rejects anything else before a review) for audience, valid for an hour,
// that TokenReview authenticates as service account namespace/name with the
// groups the API server gives service accounts. It is not signed: only this
// server reviews it.
func (s *Server) ServiceAccountToken(audience, namespace, name string) string {
	username := "system:serviceaccount:" + namespace + ":" + name
	seg := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			s.t.Fatalf("fakekube: token: %v", err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	var jti [8]byte
	_, _ = rand.Read(jti[:])
	now := time.Now()
	token := seg(map[string]string{"alg": "RS256", "kid": "fakekube"}) + "." + seg(map[string]any{
		"aud": []string{audience}, "sub": username, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "jti": hex.EncodeToString(jti[:]),
	}) + "." + base64.RawURLEncoding.EncodeToString([]byte("not-a-signature"))
	s.AddUser(token, username, "uid-"+name, "system:serviceaccounts", "system:serviceaccounts:"+namespace, "system:authenticated")
	return token
}

// Grant allows subject (a username or a group) what attrs name; an empty
// Namespace in attrs grants it in every namespace, as a ClusterRoleBinding
// would.
func (s *Server) Grant(subject string, attrs authorizationv1.ResourceAttributes) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grants[subject] = append(s.grants[subject], attrs)
}

// Revoke takes every grant of subject away.
func (s *Server) Revoke(subject string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.grants, subject)
}

// FailWith makes every review answer status (a metav1.Status body); 0
// restores normal answers.
func (s *Server) FailWith(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// Hold makes every review wait until the returned function is called.
func (s *Server) Hold() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gate := make(chan struct{})
	s.gate = gate
	return sync.OnceFunc(func() { close(gate) })
}

// SubjectAccessReviews are the specs of the reviews asked so far.
func (s *Server) SubjectAccessReviews() []authorizationv1.SubjectAccessReviewSpec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sars)
}

// Close stops the server: from then on it is unreachable.
func (s *Server) Close() { s.srv.Close() }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+CentralToken {
		s.fail(w, http.StatusUnauthorized)
		return
	}
	var obj runtime.Object
	switch {
	case r.Method == http.MethodPost && r.URL.Path == TokenReviewPath:
		obj = &authenticationv1.TokenReview{}
	case r.Method == http.MethodPost && r.URL.Path == SubjectAccessReviewPath:
		obj = &authorizationv1.SubjectAccessReview{}
	default:
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err == nil {
		_, _, err = scheme.Codecs.UniversalDeserializer().Decode(body, nil, obj)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	if sar, ok := obj.(*authorizationv1.SubjectAccessReview); ok {
		s.sars = append(s.sars, sar.Spec)
	}
	gate, status := s.gate, s.status
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			panic(http.ErrAbortHandler)
		}
	}
	if status != 0 {
		s.fail(w, status)
		return
	}
	switch o := obj.(type) {
	case *authenticationv1.TokenReview:
		s.answerTokenReview(o)
	case *authorizationv1.SubjectAccessReview:
		s.answerSubjectAccessReview(o)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(obj)
}

func (s *Server) answerTokenReview(tr *authenticationv1.TokenReview) {
	s.mu.Lock()
	user, known := s.users[tr.Spec.Token]
	s.mu.Unlock()
	tr.APIVersion, tr.Kind = "authentication.k8s.io/v1", "TokenReview"
	if known {
		tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: user, Audiences: tr.Spec.Audiences}
	} else {
		tr.Status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
	}
	tr.Spec.Token = "" // the real API server does not echo it either
}

func (s *Server) answerSubjectAccessReview(sar *authorizationv1.SubjectAccessReview) {
	sar.APIVersion, sar.Kind = "authorization.k8s.io/v1", "SubjectAccessReview"
	want := sar.Spec.ResourceAttributes
	if want == nil {
		sar.Status = authorizationv1.SubjectAccessReviewStatus{Reason: "only resource attributes are granted here"}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, subject := range append([]string{sar.Spec.User}, sar.Spec.Groups...) {
		for _, g := range s.grants[subject] {
			if (g.Namespace == "" || g.Namespace == want.Namespace) &&
				g.Verb == want.Verb && g.Group == want.Group && g.Resource == want.Resource && g.Subresource == want.Subresource {
				sar.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "granted to " + subject}
				return
			}
		}
	}
	sar.Status = authorizationv1.SubjectAccessReviewStatus{}
}

func (s *Server) fail(w http.ResponseWriter, code int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status:   metav1.StatusFailure, Code: int32(code), Message: http.StatusText(code),
	})
}

// RestConfig is how the central reaches the server: its CA and the
// central's own bearer token.
func (s *Server) RestConfig() *rest.Config {
	return &rest.Config{
		Host:            s.srv.URL,
		BearerToken:     CentralToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})},
	}
}

// Clientset is a client-go clientset for the server.
func (s *Server) Clientset() kubernetes.Interface {
	s.t.Helper()
	cs, err := kubernetes.NewForConfig(s.RestConfig())
	if err != nil {
		s.t.Fatalf("fakekube: clientset: %v", err)
	}
	return cs
}

// WriteKubeconfig writes a kubeconfig file for the server into dir.
func (s *Server) WriteKubeconfig(dir string) string {
	s.t.Helper()
	rc := s.RestConfig()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["fake"] = &clientcmdapi.Cluster{Server: rc.Host, CertificateAuthorityData: rc.CAData}
	cfg.AuthInfos["central"] = &clientcmdapi.AuthInfo{Token: CentralToken}
	cfg.Contexts["fake"] = &clientcmdapi.Context{Cluster: "fake", AuthInfo: "central"}
	cfg.CurrentContext = "fake"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		s.t.Fatalf("fakekube: kubeconfig: %v", err)
	}
	return path
}
