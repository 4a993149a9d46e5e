package ledger

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/wire"
)

// An export's proof (export format v2, export/doc.go) ties its records to
// a checkpoint, so that an export is checked offline against the trail as
// the ledger recorded it, not only against the export key's signature. Its
// proof lines, after the records, are, in this order:
//
//	{"proof":{"start":{"seq":S,"hash":"…"}}}          the chain hash of entry S
//	{"proof":{"entry":{"seq":S+1,…}}}                 every entry from S+1 …
//	{"proof":{"entry":{"seq":C,…}}}                   … to the checkpoint's
//	{"proof":{"checkpoint":{…}}}                      a checkpoint of entry C
//
// An entry that stored an exported record is given whole (writer,
// writtenAt, rows: its rows' bytes as stored, base64), any other by its
// digest alone. S is the entry before the first that stored an exported
// record. Checking: each record's leaf, recomputed from its JSON, is the
// leaf of a row of an entry given whole (same kind, ID and writer); each
// whole entry's digest is recomputed; the chain from S's hash through every
// entry reaches the checkpoint's hash; the checkpoint's signature verifies.

// ProofLine is the value of one proof line: one member set.
type ProofLine struct {
	Start      *ProofStart `json:"start,omitempty"`
	Entry      *ProofEntry `json:"entry,omitempty"`
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
}

// ProofStart is where the proof's chain starts.
type ProofStart struct {
	Seq  int64   `json:"seq"`
	Hash HexHash `json:"hash"`
}

// ProofEntry is an entry of the proof: whole (Writer, WrittenAt, Rows) or
// by its Digest.
type ProofEntry struct {
	Seq       int64      `json:"seq"`
	Digest    *HexHash   `json:"digest,omitempty"`
	Writer    string     `json:"writer,omitempty"`
	WrittenAt *time.Time `json:"writtenAt,omitempty"`
	Rows      []byte     `json:"rows,omitempty"`
}

// ExportProof is what VerifyExportProof checked.
type ExportProof struct {
	Records    int64 // every record, each found in its entry
	Entries    int64 // entries the chain went through
	Checkpoint Checkpoint
}

// exportedRecord is a record of the export awaiting its entry.
type exportedRecord struct {
	line  int64
	leaf  Leaf
	found bool
}

type recordKey struct {
	kind       byte
	writer, id string
}

// VerifyExportProof reads an export (plain or gzip) and checks its proof
// against pub, the checkpoint key's public key. Run it on an export whose
// signature export.Verify accepted: this checks what the records and the
// proof say, not who wrote the file. Memory: about 100 bytes per record.
func VerifyExportProof(r io.Reader, pub ed25519.PublicKey) (*ExportProof, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("export proof: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 64<<10), export.MaxLineBytes+1)
	var (
		enc     RowEncoder
		records = map[recordKey]*exportedRecord{}
		out     ExportProof
		chain   Hash
		next    int64 = -1 // the entry the chain expects next; -1 before the start
		done    bool       // the checkpoint was read
	)
	for line := int64(1); sc.Scan(); line++ {
		b := sc.Bytes()
		switch {
		case bytes.HasPrefix(b, []byte(`{"kind":`)):
			var a wire.AuditEntry
			if err := json.Unmarshal(b, &a); err != nil {
				return nil, fmt.Errorf("export proof: line %d: %w", line, err)
			}
			kind, leaf, err := enc.RecordLeaf(&a)
			if err != nil {
				return nil, fmt.Errorf("export proof: line %d: %w", line, err)
			}
			records[recordKey{kind, a.ServiceAccount, a.AuditID}] = &exportedRecord{line: line, leaf: leaf}
			out.Records++
		case bytes.HasPrefix(b, []byte(`{"proof":`)):
			if done {
				return nil, fmt.Errorf("export proof: line %d: a proof line after the checkpoint", line)
			}
			var p struct {
				Proof ProofLine `json:"proof"`
			}
			if err := json.Unmarshal(b, &p, json.RejectUnknownMembers(true)); err != nil {
				return nil, fmt.Errorf("export proof: line %d: %w", line, err)
			}
			var err error
			switch pl := p.Proof; {
			case pl.Start != nil && next < 0:
				chain, next = Hash(pl.Start.Hash), pl.Start.Seq+1
			case pl.Entry != nil && next >= 0:
				chain, err = proveEntry(pl.Entry, next, chain, records)
				next++
				out.Entries++
			case pl.Checkpoint != nil && next >= 0:
				c := *pl.Checkpoint
				if err = c.Verify(pub); err == nil && (c.Seq != next-1 || Hash(c.Hash) != chain) {
					err = fmt.Errorf("the chain through entry %d does not reach checkpoint %d (hash %s): records or entries were altered", next-1, c.Seq, c.Hash)
				}
				out.Checkpoint, done = c, true
			default:
				err = errors.New("not the proof line due here (start, then entries in sequence, then the checkpoint)")
			}
			if err != nil {
				return nil, fmt.Errorf("export proof: line %d: %w", line, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("export proof: %w", err)
	}
	if !done {
		return nil, errors.New("export proof: the export carries no proof (an export from a central without --checkpoint-key-file, or of format v1)")
	}
	for k, rec := range records {
		if !rec.found {
			return nil, fmt.Errorf("export proof: the record on line %d (%s %s of %s) is in no entry of the proof: altered, or written before the ledger",
				rec.line, kindName(k.kind), k.id, k.writer)
		}
	}
	return &out, nil
}

// proveEntry checks entry p, which must be entry seq, against the records
// it stored, and returns the chain hash after it.
func proveEntry(p *ProofEntry, seq int64, prev Hash, records map[recordKey]*exportedRecord) (Hash, error) {
	if p.Seq != seq {
		return prev, fmt.Errorf("entry %d where entry %d is due", p.Seq, seq)
	}
	if p.Digest != nil {
		return ChainHash(prev, seq, Hash(*p.Digest)), nil
	}
	if p.WrittenAt == nil {
		return prev, fmt.Errorf("entry %d has neither a digest nor its content", seq)
	}
	e := Entry{Writer: p.Writer, WrittenAt: *p.WrittenAt}
	if err := e.DecodeRows(p.Rows); err != nil {
		return prev, fmt.Errorf("entry %d: %w", seq, err)
	}
	for _, k := range []struct {
		kind byte
		rows []Row
	}{{KindRemediation, e.Remediation}, {KindWorkflow, e.Workflow}} {
		for _, r := range k.rows {
			rec := records[recordKey{k.kind, e.Writer, r.ID}]
			if rec == nil {
				continue // a row of the entry not in the export
			}
			if rec.leaf != r.Leaf {
				return prev, fmt.Errorf("the record on line %d (%s %s) differs from what entry %d recorded: altered", rec.line, kindName(k.kind), r.ID, seq)
			}
			rec.found = true
		}
	}
	return ChainHash(prev, seq, e.ComputeDigest()), nil
}
