package export_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/kubernaut/datastorage/export"
)

// FuzzVerify mutates the frozen v1 export. Verify must never panic, must
// describe every problem as a *VerifyError (the input is in memory: no
// read error is possible), and must accept only the file as it was signed
// (give or take the trailer's final newline): the fuzzer holds no key.
func FuzzVerify(f *testing.F) {
	frozen, err := os.ReadFile("testdata/export-v1.ndjson")
	if err != nil {
		f.Fatal(err)
	}
	pub, err := export.LoadPublicKey("testdata/openssl-ed25519.pub.pem")
	if err != nil {
		f.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(frozen)
	zw.Close()
	f.Add(frozen)
	f.Add(z.Bytes())
	f.Add(frozen[:len(frozen)/2])
	f.Add([]byte(`{"trailer":{},"signature":""}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := export.Verify(bytes.NewReader(data), pub)
		if err != nil {
			if _, ok := errors.AsType[*export.VerifyError](err); !ok {
				t.Fatalf("not a *VerifyError: %T %v", err, err)
			}
			return
		}
		plain := data
		if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
			if plain, err = io.ReadAll(zr); err != nil {
				t.Fatalf("verified, but the gzip does not read: %v", err)
			}
		}
		if !bytes.Equal(bytes.TrimSuffix(plain, []byte("\n")), bytes.TrimSuffix(frozen, []byte("\n"))) {
			t.Fatalf("verified an altered file:\n%q", plain)
		}
	})
}
