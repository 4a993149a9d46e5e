package hostile

import (
	"fmt"
	"strings"
)

// Malformed is a list of raw HTTP/1.1 requests that fasthttp itself cannot
// parse, each carrying "Authorization: Bearer <token>" and a body holding
// content: a server must answer or close without either ever reaching its
// log (fasthttp hands its logger a snippet of the raw request buffer).
func Malformed(path, token, content string) map[string]string {
	body := fmt.Sprintf(`{"remediationRequestID":%q}`, content)
	head := "POST " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + "\r\nContent-Type: application/json\r\n"
	return map[string]string{
		"Content-Length not a number": head + "Content-Length: abc\r\n\r\n" + body,
		"two Content-Lengths":         head + fmt.Sprintf("Content-Length: %d\r\nContent-Length: 3\r\n\r\n", len(body)) + body,
		"header line without a colon": head + "this is not a header " + content + "\r\n" + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body,
		"invalid method":              strings.Replace(head, "POST", "P\x01ST", 1) + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body,
		"bad chunk size":              head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n" + body + "\r\n0\r\n\r\n",
		"truncated chunked body":      head + "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n", len(body)+100) + body,
		"header beyond the buffer":    head + "X-Padding: " + strings.Repeat(content, 64<<10/len(content)+1) + "\r\n\r\n",
		"HTTP/0.9 request line":       "GET " + path + "?" + content + "\r\n\r\n",
		"garbage before the request":  "\x00\x01\x02" + content + "\r\n" + head + "\r\n",
	}
}
