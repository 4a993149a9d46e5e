package central

import (
	_ "embed"

	"github.com/valyala/fasthttp"
)

// pathOpenAPI serves the API's OpenAPI 3.1 document.
const pathOpenAPI = "/api/v1/openapi.yaml"

// OpenAPI is the OpenAPI 3.1 document of the central's whole API: every
// endpoint, body, parameter and error answer. The package's tests validate
// every request they send and every answer they get against it, so it says
// what the server does; do not modify the slice.
//
//go:embed openapi.yaml
var OpenAPI []byte

// openAPI is GET /api/v1/openapi.yaml: the document, to anyone (it holds no
// secret, and a client needs it before it has a token).
func (s *Server) openAPI(ctx *fasthttp.RequestCtx) error {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/yaml")
	ctx.SetBody(OpenAPI)
	return nil
}
