package agent

import "net"

// ServeAPIOn serves the API on ln as well, for tests whose callers must come
// from elsewhere than loopback.
func ServeAPIOn(s *Server, ln net.Listener) { s.serve(s.api, ln) }
