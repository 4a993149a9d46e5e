package central_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	liberrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/responses"
	"github.com/pb33f/libopenapi-validator/router"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/kubernaut/datastorage/central"
)

// The OpenAPI conformance check. TestMain puts a validating RoundTripper in
// place of http.DefaultTransport, so that every request a test sends to a
// harness's API address (h.do, h.post, http.Get, the hostile table's client)
// and every answer it gets is validated against central/openapi.yaml (with
// libopenapi-validator in strict mode: undeclared members, parameters and
// headers are violations too); a violation fails the test that sent the
// request. Requests sent over raw connections are checked with h.checkRaw.
//
// A request a test sends invalid on purpose is marked so, narrowly: one
// request with invalidByDesign (h.post's headers) or markInvalid, and it
// must then really be invalid; or the hostile table as a whole
// (h.hostileScope). Its answer is validated all the same.
//
// When the whole package ran (no -run), TestMain also fails the run unless
// every operation and every response status the document lists was
// exercised by some test; operations marked x-pending (not implemented yet)
// are left out of that check and listed.

// invalidByDesign, given as a header name to h.post followed by the reason,
// marks that request as invalid on purpose: it is not sent as a header.
const invalidByDesign = "\x00invalid-by-design"

type (
	ctxTest    struct{}
	ctxInvalid struct{}
)

// markInvalid marks req as invalid on purpose, for reason.
func markInvalid(req *http.Request, reason string) *http.Request {
	return req.WithContext(context.WithValue(req.Context(), ctxInvalid{}, reason))
}

// withTest makes violations of req's exchange fail t.
func withTest(req *http.Request, t *testing.T) *http.Request {
	return req.WithContext(context.WithValue(req.Context(), ctxTest{}, t))
}

// apiConformance validates exchanges with harnesses against the document
// and records which operations and statuses were exercised.
type apiConformance struct {
	next       http.RoundTripper
	model      *v3.Document
	validator  validator.Validator
	opts       []config.Option
	router     router.Router
	schemas    schema_validation.SchemaValidator
	serverWide map[int]string // status → component response, x-server-wide-responses

	mu      sync.Mutex
	hosts   map[string]*observed       // API host:port → its harness
	seen    map[string]map[string]bool // operation key → status → exercised
	pending map[string]bool            // x-pending operation key → hit by a test
}

// observed is one harness's API address.
type observed struct {
	t            *testing.T
	hostileScope string // while set, every request is invalid on purpose
}

// conformance is the package's checker, set up by TestMain.
var conformance *apiConformance

func TestMain(m *testing.M) {
	flag.Parse()
	c, err := newConformance(central.OpenAPI, http.DefaultTransport)
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapi:", err)
		os.Exit(1)
	}
	conformance = c
	http.DefaultTransport = c
	code := m.Run()
	if wholePackageRan() && !c.report(os.Stdout) && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// wholePackageRan reports whether no -run or -skip narrowed the run (and
// -list ran nothing), so that coverage of the document is meaningful.
func wholePackageRan() bool {
	for _, name := range []string{"test.run", "test.skip", "test.list"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}

func newConformance(spec []byte, next http.RoundTripper) (*apiConformance, error) {
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, fmt.Errorf("parse the document: %w", err)
	}
	built, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("build the document's model: %w", err)
	}
	// Strict mode: a member, query parameter or header the document does
	// not declare is a violation even where the schema would allow it
	// (answers are open for clients' sake; the server must still say only
	// what is documented).
	// Server (fasthttp's name for the central) is HTTP's, not the API's.
	opts := []config.Option{config.WithStrictMode(), config.WithStrictIgnoredHeadersExtra("Server"),
		config.WithFormatAssertions()}
	v, errs := validator.NewValidator(doc, opts...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("build the validator: %w", errors.Join(errs...))
	}
	c := &apiConformance{
		next:       next,
		model:      &built.Model,
		opts:       opts,
		validator:  v,
		router:     router.NewRouter(&built.Model, router.WithPathOnlyMatching()),
		schemas:    schema_validation.NewSchemaValidator(opts...),
		serverWide: map[int]string{},
		hosts:      map[string]*observed{},
		seen:       map[string]map[string]bool{},
		pending:    map[string]bool{},
	}
	if node := built.Model.Extensions.GetOrZero("x-server-wide-responses"); node != nil {
		var m map[string]string
		if err := node.Decode(&m); err != nil {
			return nil, fmt.Errorf("x-server-wide-responses: %w", err)
		}
		c.seen[serverWideKey] = map[string]bool{}
		for code, name := range m {
			status, err := strconv.Atoi(code)
			if err != nil || built.Model.Components.Responses.GetOrZero(name) == nil {
				return nil, fmt.Errorf("x-server-wide-responses: %s: %s is not a status and a component response", code, name)
			}
			c.serverWide[status] = name
			c.seen[serverWideKey][code] = false
		}
	}
	for path, item := range built.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			key := strings.ToUpper(method) + " " + path
			if isPending(op) {
				c.pending[key] = false
				continue
			}
			c.seen[key] = map[string]bool{}
			for code := range op.Responses.Codes.KeysFromOldest() {
				c.seen[key][code] = false
			}
		}
	}
	return c, nil
}

// serverWideKey records the server-wide answers (x-server-wide-responses).
const serverWideKey = "(any request)"

func isPending(op *v3.Operation) bool {
	node := op.Extensions.GetOrZero("x-pending")
	return node != nil && node.Value == "true"
}

// observe registers a harness's API base URL: violations of exchanges with
// it fail t (or the test that sent the request, when it says so).
func (c *apiConformance) observe(t *testing.T, baseURL string) *observed {
	o := &observed{t: t}
	host := strings.TrimPrefix(baseURL, "http://")
	c.mu.Lock()
	c.hosts[host] = o
	c.mu.Unlock()
	t.Cleanup(func() {
		c.mu.Lock()
		delete(c.hosts, host)
		c.mu.Unlock()
	})
	return o
}

func (c *apiConformance) observer(host string) *observed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hosts[host]
}

// RoundTrip sends req and validates the exchange when req goes to a
// harness's API; the caller gets the answer unchanged.
func (c *apiConformance) RoundTrip(req *http.Request) (*http.Response, error) {
	o := c.observer(req.URL.Host)
	if o == nil {
		return c.next.RoundTrip(req)
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	sent := req.Clone(req.Context())
	sent.Body = io.NopCloser(bytes.NewReader(body))
	sent.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	resp, err := c.next.RoundTrip(sent)
	if err != nil {
		return nil, err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(answer))
	t, _ := req.Context().Value(ctxTest{}).(*testing.T)
	if t == nil {
		t = o.t
	}
	reason, marked := req.Context().Value(ctxInvalid{}).(string)
	c.check(t, exchange{req: req, body: body, resp: resp, answer: answer,
		invalidReason: reason, marked: marked, hostileScope: o.hostileScope})
	return resp, nil
}

// exchange is one request and its answer as seen on the wire.
type exchange struct {
	req           *http.Request
	body          []byte // as sent (compressed when Content-Encoding says so)
	resp          *http.Response
	answer        []byte
	invalidReason string // why the request is invalid on purpose
	marked        bool   // the request is marked invalid on purpose
	hostileScope  string // the hostile table: every request invalid on purpose
	raw           bool   // sent over a raw connection: the request is not checked
	unparsed      bool   // a request the server could not parse: req is nil
}

// check validates one exchange and fails t with every violation.
func (c *apiConformance) check(t *testing.T, x exchange) {
	t.Helper()
	what := "a request the server could not parse"
	if x.req != nil && !x.unparsed {
		what = x.req.Method + " " + x.req.URL.RequestURI()
	}
	if len(what) > 120 {
		what = what[:120] + "…"
	}
	reqProblems, respProblems, key, status := c.validate(x)
	if key == "" { // a pending operation: the server does not implement it yet
		return
	}
	c.mu.Lock()
	c.seen[key][status] = true
	c.mu.Unlock()

	switch {
	case x.raw:
	case x.hostileScope != "":
	case x.marked && len(reqProblems) == 0:
		t.Errorf("openapi: %s was marked invalid on purpose (%s) but conforms to the document: remove the mark", what, x.invalidReason)
	case !x.marked && len(reqProblems) > 0:
		t.Errorf("openapi: request %s does not conform to the document (mark it with invalidByDesign if that is its purpose):\n\t%s",
			what, strings.Join(reqProblems, "\n\t"))
	}
	if len(respProblems) > 0 {
		t.Errorf("openapi: the answer %d to %s does not conform to the document:\n\t%s\n\tbody: %.300s",
			x.resp.StatusCode, what, strings.Join(respProblems, "\n\t"), x.answer)
	}
}

// validate returns the request's and the answer's violations, and the key
// and status the answer counts for ("" key: a pending operation).
func (c *apiConformance) validate(x exchange) (reqProblems, respProblems []string, key, status string) {
	status = strconv.Itoa(x.resp.StatusCode)
	if x.unparsed {
		name, ok := c.serverWide[x.resp.StatusCode]
		if !ok {
			return nil, []string{"status " + status + " is not a server-wide answer"}, serverWideKey, status
		}
		return nil, c.checkComponent(name, x), serverWideKey, status
	}
	// The requests of the hostile table are invalid by design and can be
	// large (decompression bombs): only their answers are validated.
	checkRequest := !x.raw && x.hostileScope == ""
	vreq, err := c.decodedRequest(x, checkRequest)
	if err != nil {
		reqProblems = append(reqProblems, err.Error())
	}
	route, rerr := c.router.FindRoute(vreq)
	switch {
	case rerr == nil && isPending(route.Operation):
		c.mu.Lock()
		c.pending[route.Method+" "+route.Path] = true
		c.mu.Unlock()
		return nil, nil, "", ""
	case rerr == nil:
		key = route.Method + " " + route.Path
		if err == nil && checkRequest {
			if ok, errs := c.validator.ValidateHttpRequestSync(vreq); !ok {
				reqProblems = append(reqProblems, describe(errs)...)
			}
		}
		if route.Operation.Responses.Codes.GetOrZero(status) != nil {
			vresp, err := decodedResponse(x)
			if err != nil {
				return reqProblems, []string{err.Error()}, key, status
			}
			if isNDJSON(x.resp) {
				// The library reads a body as one JSON value: it checks
				// the headers, checkNDJSON each line.
				headers := route.Operation.Responses.Codes.GetOrZero(status).Headers
				if ok, errs := responses.ValidateResponseHeaders(vreq, vresp, headers, route.Path, status, c.opts...); !ok {
					respProblems = append(respProblems, describe(errs)...)
				}
				respProblems = append(respProblems, c.checkNDJSON(route.Operation, status, x)...)
			} else if ok, errs := c.validator.ValidateHttpResponse(vreq, vresp); !ok {
				respProblems = append(respProblems, describe(errs)...)
			}
			return reqProblems, respProblems, key, status
		}
		// Not the operation's own answer: only a server-wide one can be
		// right, and not "no such path" or "no such method" (it has both).
		if name, ok := c.serverWide[x.resp.StatusCode]; ok && x.resp.StatusCode != 404 && x.resp.StatusCode != 405 {
			return reqProblems, c.checkComponent(name, x), serverWideKey, status
		}
		return reqProblems, []string{fmt.Sprintf("status %s is not documented for %s", status, key)}, key, status
	default:
		reqProblems = append(reqProblems, "no operation of the document takes "+x.req.Method+" "+x.req.URL.Path)
		name, ok := c.serverWide[x.resp.StatusCode]
		switch {
		case !ok:
			return reqProblems, []string{fmt.Sprintf("status %s is not a server-wide answer, and no operation takes the request", status)}, serverWideKey, status
		case x.resp.StatusCode == 404 && errors.Is(rerr, router.ErrMethodNotAllowed):
			return reqProblems, []string{"404 for a path the document has (the method is not its: 405 was due)"}, serverWideKey, status
		case x.resp.StatusCode == 405 && errors.Is(rerr, router.ErrPathNotFound):
			return reqProblems, []string{"405 for a path the document does not have (404 was due)"}, serverWideKey, status
		}
		return reqProblems, c.checkComponent(name, x), serverWideKey, status
	}
}

// decodedRequest is the request as the validator reads it: with its body,
// decompressed as its Content-Encoding says (when withBody).
func (c *apiConformance) decodedRequest(x exchange, withBody bool) (*http.Request, error) {
	var body []byte
	var err error
	if withBody {
		body, err = decode(x.body, x.req.Header.Get("Content-Encoding"))
	}
	r := x.req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if err != nil {
		return r, fmt.Errorf("the body is not valid for its Content-Encoding: %w", err)
	}
	return r, nil
}

func decodedResponse(x exchange) (*http.Response, error) {
	body, err := decode(x.answer, x.resp.Header.Get("Content-Encoding"))
	if err != nil {
		return nil, fmt.Errorf("the answer is not valid for its Content-Encoding: %w", err)
	}
	r := *x.resp
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return &r, nil
}

// decode undoes a Content-Encoding; at most 64 MiB come out (the hostile
// table's bombs expand to a little more than 16).
func decode(body []byte, encoding string) ([]byte, error) {
	const limit = 64 << 20
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return body, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return body, err
		}
		return io.ReadAll(io.LimitReader(zr, limit))
	case "zstd":
		d, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderMaxMemory(limit))
		if err != nil {
			return body, err
		}
		defer d.Close()
		return io.ReadAll(io.LimitReader(d, limit))
	default:
		return body, fmt.Errorf("unknown encoding %q", encoding)
	}
}

func isNDJSON(resp *http.Response) bool {
	return strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson")
}

// checkNDJSON validates each line of an NDJSON answer against its media
// type's schema, which describes one line (the library validates bodies
// that are one JSON value).
func (c *apiConformance) checkNDJSON(op *v3.Operation, status string, x exchange) []string {
	r := op.Responses.Codes.GetOrZero(status)
	if r.Content == nil {
		return nil
	}
	mt := r.Content.GetOrZero("application/x-ndjson")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	body, err := decode(x.answer, x.resp.Header.Get("Content-Encoding"))
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 16<<20)
	for n := 1; sc.Scan(); n++ {
		if ok, errs := c.schemas.ValidateSchemaBytes(mt.Schema.Schema(), sc.Bytes()); !ok {
			for _, p := range describe(errs) {
				problems = append(problems, fmt.Sprintf("line %d: %s", n, p))
			}
		}
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}

// checkComponent validates an answer against a server-wide component
// response: its body's schema and its headers.
func (c *apiConformance) checkComponent(name string, x exchange) []string {
	r := c.model.Components.Responses.GetOrZero(name)
	var problems []string
	for hname, h := range r.Headers.FromOldest() { // nil-safe
		v := x.resp.Header.Get(hname)
		switch {
		case v == "" && h.Required:
			problems = append(problems, "missing header "+hname+" (components/responses/"+name+")")
		case v != "":
			if ok, errs := c.schemas.ValidateSchemaObject(h.Schema.Schema(), headerValue(h.Schema.Schema(), v)); !ok {
				problems = append(problems, prefix("header "+hname+": ", describe(errs))...)
			}
		}
	}
	ct := x.resp.Header.Get("Content-Type")
	var mt *v3.MediaType
	if r.Content != nil {
		mt = r.Content.GetOrZero(strings.TrimSpace(strings.Split(ct, ";")[0]))
	}
	if mt == nil {
		return append(problems, fmt.Sprintf("Content-Type %q is not documented in components/responses/%s", ct, name))
	}
	if ok, errs := c.schemas.ValidateSchemaBytes(mt.Schema.Schema(), x.answer); !ok {
		problems = append(problems, prefix("components/responses/"+name+": ", describe(errs))...)
	}
	return problems
}

// headerValue is v as the header's schema types it.
func headerValue(s *base.Schema, v string) any {
	if slices.Contains(s.Type, "integer") {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return v
}

func prefix(p string, lines []string) []string {
	for i := range lines {
		lines[i] = p + lines[i]
	}
	return lines
}

// describe flattens the library's errors into one line each.
func describe(errs []*liberrors.ValidationError) []string {
	var out []string
	for _, e := range errs {
		line := e.Message
		if e.Reason != "" && e.Reason != e.Message {
			line += ": " + e.Reason
		}
		out = append(out, line)
		for _, f := range e.SchemaValidationErrors {
			out = append(out, fmt.Sprintf("  %s (%s): %s", cmpOr(f.FieldPath, "$"), f.KeywordLocation, f.Reason))
		}
	}
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// report prints the document's coverage: the pending operations, and what
// no test exercised. It returns false when something was not exercised.
func (c *apiConformance) report(w io.Writer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var missing []string
	for _, key := range slices.Sorted(maps.Keys(c.seen)) {
		var codes []string
		for _, code := range slices.Sorted(maps.Keys(c.seen[key])) {
			if !c.seen[key][code] {
				codes = append(codes, code)
			}
		}
		if len(codes) > 0 {
			missing = append(missing, key+": "+strings.Join(codes, ", "))
		}
	}
	if len(c.pending) > 0 {
		fmt.Fprintf(w, "openapi: %d operations are x-pending, left out of the coverage check:\n", len(c.pending))
		for _, key := range slices.Sorted(maps.Keys(c.pending)) {
			fmt.Fprintf(w, "\t%s\n", key)
		}
	}
	if len(missing) == 0 {
		fmt.Fprintf(w, "openapi: every other operation and documented status was exercised (%d operations, and the server-wide answers)\n", len(c.seen)-1)
		return true
	}
	fmt.Fprintf(w, "FAIL: openapi: documented but exercised by no test (add a test, or remove what the server cannot answer):\n")
	for _, m := range missing {
		fmt.Fprintf(w, "\t%s\n", m)
	}
	return false
}

// hostileScope runs send with every request to h's API counted as invalid
// on purpose (the hostile table); answers are still validated.
func (h *harness) hostileScope(name string, send func()) {
	h.conf.hostileScope = name
	defer func() { h.conf.hostileScope = "" }()
	send()
}

// checkRaw validates an answer read from a raw connection (a request the
// tests write byte by byte, which net/http would not send): req describes
// what was sent, and only the answer is checked.
func (h *harness) checkRaw(t *testing.T, req *http.Request, resp *http.Response) {
	t.Helper()
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Errorf("openapi: reading the raw answer: %v", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(answer))
	conformance.check(t, exchange{req: req, resp: resp, answer: answer, raw: true})
}

// checkUnparsed validates the answer, if any, that the server wrote on a
// raw connection to a request it may not have parsed (malformed HTTP, a
// request that never arrived in time): a server-wide answer, or, when the
// server got as far as the endpoint, the answer of req (what the request
// line and headers said, when known; nil otherwise).
func (h *harness) checkUnparsed(t *testing.T, req *http.Request, raw []byte) {
	t.Helper()
	if len(raw) == 0 {
		return // the server closed without answering
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		t.Errorf("openapi: the server's answer is not HTTP: %v: %.200q", err, raw)
		return
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(answer))
	_, serverWide := conformance.serverWide[resp.StatusCode]
	conformance.check(t, exchange{req: req, resp: resp, answer: answer, raw: true, unparsed: serverWide || req == nil})
}
